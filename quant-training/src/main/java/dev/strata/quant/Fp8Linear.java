package dev.strata.quant;

import dev.strata.runtime.Backend;
import dev.strata.runtime.Backend.Fp8Operand;
import dev.strata.runtime.Backend.Fp8Target;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.Activations;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Predicate;

/**
 * y = x·Wᵀ + b with all three GEMMs in FP8 (HALO). Each operand is rotated along the GEMM's contracted dimension by
 * the block-diagonal Hadamard matrix H when the {@link Rotation} level asks for it (H·Hᵀ = I, so the product is
 * unchanged in exact arithmetic while outliers spread over the block) and quantized per tensor: E4M3 for
 * activations and weights, E5M2 for gradients. x, dy and W each feed two GEMMs, so both of a tensor's operands
 * (row-wise, and transposed for the other contraction) come from one read of it. The weight's two FP8 copies are
 * made once per optimizer update and shared by the micro-batches; the forward keeps x already quantized for the
 * weight gradient, at half the memory of bf16 (none when the weight is frozen, as under LoRA: the weight-gradient
 * GEMM is skipped). Master weight, gradient and bias stay f32.
 *
 * <p>Scaling ({@link Scaling}) is per tensor, current (each tensor's own amax, one extra pass over it) or delayed
 * (the largest amax of the last steps, as Transformer Engine does, recorded while quantizing: one pass), for x, dy
 * and the weight alike; or rowwise, one scale per row of every operand (per token, per channel). A site's first
 * delayed quantization scales currently, to fill its history. Every site records its amax, so after a step
 * {@link #nonFiniteInputs} can say which tensor held a NaN or an infinity. With {@code quantize = false} the
 * rotations run without FP8, so the layer equals the dense one up to rounding.
 */
public final class Fp8Linear implements Linear {
    /** {@code hadamard_block = full}: one block over each whole contracted dimension, where a power of two allows. */
    public static final int FULL_BLOCK = 0;

    /**
     * How a layer runs: its rotation level and block ({@link #FULL_BLOCK}: as large as each contracted dimension
     * allows), whether to quantize at all, its scaling recipe, and the amax history length of delayed scaling.
     */
    public record Settings(Rotation rotation, int hadamardBlock, boolean quantize, Scaling scaling, int amaxHistory) {
        public Settings {
            if (hadamardBlock != FULL_BLOCK && (hadamardBlock < 2 || Integer.bitCount(hadamardBlock) != 1))
                throw new IllegalArgumentException("precision.hadamard_block must be a power of two of at least 2, or full; got " + hadamardBlock);
            if (scaling == Scaling.DELAYED && amaxHistory < 2)
                throw new IllegalArgumentException("delayed scaling takes an amax history of at least 2 steps, got " + amaxHistory);
        }

        /**
         * The Hadamard block along a contracted dimension of this size: the configured one, or under FULL_BLOCK the
         * largest power of two dividing it (the whole dimension when it is a power of two: 4096 stays 4096, 14336 is
         * rotated in 7 blocks of 2048; Walsh–Hadamard matrices come in powers of two only).
         */
        public int block(int contracted) { return hadamardBlock == FULL_BLOCK ? Integer.lowestOneBit(contracted) : hadamardBlock; }

        /** Current scaling. */
        public Settings(Rotation rotation, int hadamardBlock, boolean quantize) { this(rotation, hadamardBlock, quantize, Scaling.CURRENT, 0); }

        private int historyLength() { return scaling == Scaling.DELAYED ? amaxHistory : 2; }
    }

    /** Where a tensor is quantized; each keeps its own amax history under delayed scaling. */
    private enum Site {
        X_ROWS("x"), X_COLS("x"), DY_ROWS("dy"), DY_COLS("dy"), W_ROWS("weight"), W_COLS("weight");

        final String input;

        Site(String input) { this.input = input; }

        boolean weight() { return input.equals("weight"); }
    }

    private final Backend backend;
    private final String name;
    private final Parameter weight; // (out,in)
    private final Parameter bias;   // (out) or null
    private final Settings settings;
    private final SharedInput inputs; // shared with the other layers of a plan
    private Fp8Operand wFwd, wDgrad;  // (out,in) contracted over in; (in,out) contracted over out
    // (H) per Site, amax of this step in slot 0 and of earlier steps after it; H = 2 under current and rowwise
    // scaling, where slot 1 only tells nonFiniteInputs what the last step saw
    private final List<Tensor> histories = new ArrayList<>();
    // Per Site: an amax was recorded this step; the history holds an earlier step, so delayed scaling may start.
    // Only ended steps count: loading weights (resume, init_from) marks them updated but ends no step.
    private final boolean[] recorded = new boolean[Site.values().length], ready = new boolean[Site.values().length];

    /** A layer that quantizes every input itself. */
    public Fp8Linear(String name, Parameter weight, Parameter bias, Settings settings) { this(name, weight, bias, settings, new SharedInput()); }

    /** A layer that takes an input's operands from {@code inputs} when the layer before it quantized the same tensor. */
    Fp8Linear(String name, Parameter weight, Parameter bias, Settings settings, SharedInput inputs) {
        this.inputs = inputs;
        this.backend = weight.value().backend();
        this.name = name;
        this.weight = weight;
        this.bias = bias;
        this.settings = settings;
        int out = weight.shape()[0], in = weight.shape()[1];
        requireFp8Dimension(in, "in-features");
        requireFp8Dimension(out, "out-features");
        if (settings.rotation().forward()) requireBlockDivides(in, "in-features");
        if (settings.rotation().dgrad()) requireBlockDivides(out, "out-features");
        for (Site site : Site.values()) histories.add(backend.zeros(DType.F32, settings.historyLength()));
        weight.onUpdate(this::afterUpdate);
    }

    /**
     * A new step in the histories of x and dy; delayed scaling may now use what the step recorded. A trainable
     * weight's histories step with its updates instead, so that its copies are scaled from the step before.
     */
    @Override public void endStep() {
        // a frozen weight's sites too, in the same launch: no updates step them (a NaN loaded into it is reported once, then gone)
        newStep(site -> !site.weight() || !weight.trainable());
    }

    /** After each update of the weight (an optimizer step, a load): a new step in its histories, its FP8 copies made again. */
    private void afterUpdate() {
        newStep(Site::weight);
        if (wFwd != null) quantizeWeight();
    }

    private void newStep(Predicate<Site> sites) {
        List<Tensor> rolled = new ArrayList<>();
        for (Site site : Site.values())
            if (sites.test(site)) {
                rolled.add(histories.get(site.ordinal()));
                ready[site.ordinal()] |= recorded[site.ordinal()];
            }
        backend.rollAmaxHistories(rolled);
    }

    @Override public int inFeatures() { return weight.shape()[1]; }

    @Override public int outFeatures() { return weight.shape()[0]; }

    @Override public void forward(Tensor x, Tensor y, double beta) {
        int n = x.size(0);
        requireFp8Dimension(n, "token count (batch x seq)");
        if (settings.rotation().wgrad() && weight.trainable()) requireBlockDivides(n, "token count (batch x seq)");
        discard();
        boolean trainable = weight.trainable();
        SharedInput.Held xT = null;       // (in,N): x contracted over tokens, kept for dW in the micro-batch's Activations
        Fp8Operand xq = inputs.rows(x, settings, trainable);
        if (xq != null) {
            if (trainable) xT = inputs.cols();
        } else {
            xq = operand(x, DType.FP8_E4M3, false);
            if (trainable) {
                Fp8Operand cols = operand(x, DType.FP8_E4M3, true);
                backend.quantizeFp8Both(x, target(xq, Site.X_ROWS, settings.rotation().forward()), target(cols, Site.X_COLS, settings.rotation().wgrad()));
                xT = new SharedInput.Held(cols);
            } else {
                quantizeRowsOnly(x, target(xq, Site.X_ROWS, settings.rotation().forward()));
            }
            inputs.put(x, settings, xq, xT == null ? null : xT.hold());
        }
        if (xT != null) Activations.current().keep(this, xT);
        backend.matmulFp8(xq, weightForward(), y, beta);
        if (bias != null) backend.addBias(y, bias.value());
    }

    /** dx = dy·W + beta·dx; dW += dyᵀ·x unless the weight is frozen; db += Σ_rows dy. */
    @Override public void backward(Tensor dy, Tensor dx, double beta) {
        inputs.clear(); // forward is over: no layer reads the last input again
        SharedInput.Held xT = Activations.current().peek(this);
        try (Fp8Operand dyq = operand(dy, DType.FP8_E5M2, false)) { // (N,out)
            if (weight.trainable()) {
                try (Fp8Operand dyT = operand(dy, DType.FP8_E5M2, true)) { // (out,N)
                    backend.quantizeFp8Both(dy, target(dyq, Site.DY_ROWS, settings.rotation().dgrad()), target(dyT, Site.DY_COLS, settings.rotation().wgrad()));
                    backend.matmulFp8(dyT, xT.operand(), weight.grad(), 1);
                }
            } else {
                quantizeRowsOnly(dy, target(dyq, Site.DY_ROWS, settings.rotation().dgrad()));
            }
            backend.matmulFp8(dyq, weightDgrad(), dx, beta);
        }
        if (bias != null && bias.trainable()) backend.sumRowsAccumulate(dy, bias.grad());
        discard();
    }

    /** A frozen weight needs no weight gradient, so x and dy need only their row-wise operands. */
    private void quantizeRowsOnly(Tensor t, Fp8Target rows) {
        backend.quantizeFp8(t, false, rows.hadamardBlock(), rows.out(), rows.amaxHistory(), rows.fromHistory());
    }

    private Fp8Operand weightForward() {
        if (wFwd == null) {
            wFwd = operand(weight.value(), DType.FP8_E4M3, false);
            wDgrad = operand(weight.value(), DType.FP8_E4M3, true);
            quantizeWeight();
        }
        return wFwd;
    }

    private Fp8Operand weightDgrad() {
        weightForward();
        return wDgrad;
    }

    /** The weight's two copies in E4M3, in place: captured graphs hold their addresses. */
    private void quantizeWeight() {
        backend.quantizeFp8Both(weight.value(), target(wFwd, Site.W_ROWS, settings.rotation().forward()),
                target(wDgrad, Site.W_COLS, settings.rotation().dgrad()));
    }

    /** An uninitialised operand for t (R,C), or for tᵀ; in t's own dtype when quantizing is off. */
    private Fp8Operand operand(Tensor t, DType format, boolean transpose) {
        DType dtype = settings.quantize() ? format : t.dtype();
        int rows = t.size(transpose ? 1 : 0);
        return new Fp8Operand(backend.empty(dtype, rows, t.size(transpose ? 0 : 1)), backend.empty(DType.F32, settings.scaling() == Scaling.ROWWISE ? rows : 1));
    }

    private Fp8Target target(Fp8Operand out, Site site, boolean rotate) {
        recorded[site.ordinal()] = true;
        int block = rotate ? settings.block(out.data().size(1)) : 0; // operands hold their contracted dimension last
        return new Fp8Target(out, block, histories.get(site.ordinal()), settings.scaling() == Scaling.DELAYED && ready[site.ordinal()]);
    }

    /** The amax histories, which a resumed run needs to scale as the interrupted one would have. */
    @Override public Map<String, Tensor> stepState() {
        Map<String, Tensor> state = new LinkedHashMap<>();
        for (Site site : Site.values()) state.put("amax_history." + site.name().toLowerCase(Locale.ROOT), histories.get(site.ordinal()));
        return state;
    }

    /** Delayed scaling goes on from loaded histories that hold an earlier step. */
    @Override public void stepStateLoaded() {
        for (Site site : Site.values()) {
            double[] h = backend.toDoubles(histories.get(site.ordinal()));
            for (int i = 1; i < h.length; i++) ready[site.ordinal()] |= h[i] != 0;
        }
    }

    /** "weight", "x" or "dy" where the amax of the step before the last update was NaN or infinite. */
    @Override public List<String> nonFiniteInputs() {
        List<String> bad = new ArrayList<>();
        for (Site site : Site.values())
            if (!bad.contains(site.input) && !Double.isFinite(backend.toDoubles(histories.get(site.ordinal()))[1])) bad.add(site.input);
        return bad;
    }

    private void requireFp8Dimension(int size, String what) {
        if (size % 16 != 0)
            throw new IllegalArgumentException("layer " + name + ": FP8 GEMMs need every dimension a multiple of 16, but its " + what
                    + " is " + size + "; run it dense with precision.exclude = [\"" + name + "\"]");
    }

    private void requireBlockDivides(int size, String what) {
        if (size % settings.block(size) != 0)
            throw new IllegalArgumentException("layer " + name + ": precision.hadamard_block " + settings.hadamardBlock()
                    + " does not divide its " + what + " (" + size + "); choose a smaller block or exclude the layer");
    }

    /** Lets go of the FP8 copy of x that forward kept (evaluation runs forward only). */
    @Override public void discard() {
        SharedInput.Held xT = Activations.current().take(this);
        if (xT != null) xT.release();
    }

    @Override public List<Parameter> parameters() {
        List<Parameter> ps = new ArrayList<>(List.of(weight));
        if (bias != null) ps.add(bias);
        return ps;
    }
}
