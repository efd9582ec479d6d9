package dev.strata.quant;

import dev.strata.runtime.Backend.Fp8Operand;
import dev.strata.runtime.Tensor;

/**
 * The FP8 operands of the input the last FP8 layer quantized, so the next layers that read the same tensor (wq, wk
 * and wv read one x; w1 and w3 another) use them instead of quantizing it again. Identical settings make identical
 * codes, so sharing changes no result; the model writes no layer's input between the layers that read it. The
 * row-wise operand lives until another input arrives or a backward begins; the transposed one, which the weight
 * gradients need, until every layer that took it lets go.
 */
final class SharedInput {
    /** The transposed operand, freed when its last holder releases it. */
    static final class Held {
        private final Fp8Operand operand;
        private int holders = 1;

        Held(Fp8Operand operand) { this.operand = operand; }

        Fp8Operand operand() { return operand; }

        Held hold() {
            holders++;
            return this;
        }

        void release() {
            if (--holders == 0) operand.close();
        }
    }

    private Tensor source;
    private Fp8Linear.Settings settings;
    private Fp8Operand rows; // (N,in)
    private Held cols;       // (in,N) or null: held here too, so a later layer can take it

    /** The row-wise operand of x if the last input quantized was x, with these settings and (when asked) its transpose. */
    Fp8Operand rows(Tensor x, Fp8Linear.Settings s, boolean withCols) {
        return x == source && s.equals(settings) && (cols != null || !withCols) ? rows : null;
    }

    /** The transposed operand of the input {@link #rows} returned, held once more for the caller. */
    Held cols() { return cols.hold(); }

    /** x's operands, just quantized: they replace the last input's. */
    void put(Tensor x, Fp8Linear.Settings s, Fp8Operand rows, Held cols) {
        clear();
        this.source = x;
        this.settings = s;
        this.rows = rows;
        this.cols = cols;
    }

    /** Lets go of the last input's operands (layers still holding its transpose keep it). */
    void clear() {
        if (rows != null) rows.close();
        if (cols != null) cols.release();
        source = null;
        rows = null;
        cols = null;
    }
}
