package dev.strata.parallel.tensor;

import dev.strata.parallel.comm.Communicator;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.Parameter;
import java.util.List;

/**
 * A linear whose weight (out,in) is split by output rows over tp: this rank holds (out/tp, in) and its bias slice,
 * reads the whole input and writes its slice of the output (N,out/tp), so {@link #outFeatures} is the local width.
 * Under sequence parallelism it reads a row shard, which its {@link SharedInput} gathers to all N rows first.
 * Backward leaves a partial input gradient, which the shared input completes. The slice itself is whatever the plan's
 * base maker made at its size (dense, FP8; see {@link SlicedLinear}).
 */
public final class ColumnParallelLinear extends SlicedLinear {
    private final SharedInput input;

    ColumnParallelLinear(Linear local, SharedInput input, Communicator tp) {
        super(local, tp);
        this.input = input;
        input.join();
    }

    @Override public void forward(Tensor x, Tensor y, double beta) { local.forward(input.input(x), y, beta); } // x (N,in) -> y (N,out/tp)

    @Override public Tensor forward(Tensor x) {
        Tensor y = x.backend().empty(x.dtype(), input.outputRows(x.size(0)), outFeatures());
        forward(x, y, 0);
        return y;
    }

    @Override public void backward(Tensor dy, Tensor dx, double beta) {
        SharedInput.Target into = input.target(dx, beta);
        local.backward(dy, into.dx(), into.beta()); // dx (N,in) += dy (N,out/tp) · W_slice: this rank's part
        input.added(dx);
    }

    @Override public Tensor backward(Tensor dy) {
        Tensor dx = dy.backend().empty(dy.dtype(), input.inputRows(dy.size(0)), inFeatures());
        backward(dy, dx, 0);
        return dx;
    }

    @Override public List<Parameter> parameters() { return local.parameters(); }

    @Override public void discard() {
        local.discard();
        input.discard();
    }
}
