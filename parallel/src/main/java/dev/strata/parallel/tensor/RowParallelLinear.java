package dev.strata.parallel.tensor;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.List;

/**
 * A linear whose weight (out,in) is split by input columns over tp: this rank holds (out, in/tp), reads its slice of
 * the input (what a column-parallel layer wrote) and the partial products are summed over tp (Megatron's g
 * operator): all-reduced, or under sequence parallelism reduce-scattered into this rank's row shard. The bias, whole
 * on every rank, is added once after the sum. Its input gradient is this rank's slice already: dy is whole on every
 * rank (gathered from the row shards under sequence parallelism).
 */
public final class RowParallelLinear extends SlicedLinear {
    private final Backend backend;
    private final SequenceParallel sp; // null: rows are not sharded
    private final Parameter bias;      // (out) or null, replicated over tp; the slice (out, in/tp) has none: it must not be added tp times

    RowParallelLinear(Linear local, Parameter bias, Communicator tp, SequenceParallel sp) {
        super(local, tp);
        this.backend = local.parameters().get(0).value().backend();
        this.bias = bias;
        this.sp = sp;
    }

    private boolean sharded() { return sp != null && sp.active(); }

    @Override public void forward(Tensor x, Tensor y, double beta) {
        Tensor sum;
        if (sharded()) {
            try (Tensor partial = backend.empty(y.dtype(), x.size(0), outFeatures())) {
                local.forward(x, partial, 0);                         // (N,out): this rank's partial product
                sum = sp.reduceScatter(partial);                      // (N/tp,out): this rank's rows of the sum
            }
        } else {
            sum = beta == 0 ? y : backend.empty(y.dtype(), y.shape());
            local.forward(x, sum, 0);
            tp.allReduce(sum, ReduceOp.SUM).await();
        }
        if (bias != null) backend.addBias(sum, bias.valueAs(sum.dtype()));
        if (sum != y) {
            SequenceParallel.write(backend, sum, y, beta == 0);
            sum.close();
        }
    }

    @Override public Tensor forward(Tensor x) {
        Tensor y = backend.empty(x.dtype(), sharded() ? x.size(0) / sp.size() : x.size(0), outFeatures());
        forward(x, y, 0);
        return y;
    }

    @Override public void backward(Tensor dy, Tensor dx, double beta) {
        if (bias != null && bias.trainable()) backend.sumRowsAccumulate(dy, bias.grad()); // this rank's rows under sp: partial
        if (!sharded()) {
            local.backward(dy, dx, beta);           // dW_slice += dyᵀ·x_slice; dx_slice = dy·W_slice
            return;
        }
        try (Tensor whole = sp.gather(dy)) {
            local.backward(whole, dx, beta);
        }
    }

    @Override public Tensor backward(Tensor dy) {
        Tensor dx = backend.empty(dy.dtype(), sharded() ? dy.size(0) * sp.size() : dy.size(0), inFeatures());
        backward(dy, dx, 0);
        return dx;
    }

    @Override public List<Parameter> parameters() {
        List<Parameter> ps = new ArrayList<>(local.parameters());
        if (bias != null) ps.add(bias);
        return ps;
    }

    @Override public void discard() { local.discard(); }
}
