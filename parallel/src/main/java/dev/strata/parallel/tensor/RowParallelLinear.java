package dev.strata.parallel.tensor;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.DenseLinear;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.List;

/**
 * A linear whose weight (out,in) is split by input columns over tp: this rank holds (out, in/tp), reads its slice of
 * the input (what a column-parallel layer wrote) and the partial products are summed over tp (Megatron's g
 * operator); the bias, whole on every rank, is added once after the sum. Its input gradient is this rank's slice
 * already: dy is whole on every rank.
 */
public final class RowParallelLinear implements Linear {
    private final Backend backend;
    private final Communicator tp;
    private final DenseLinear local; // weight (out, in/tp), no bias: it must not be added tp times
    private final Parameter bias;    // (out) or null, replicated over tp

    RowParallelLinear(Parameter weight, Parameter bias, Communicator tp) {
        this.backend = weight.value().backend();
        this.local = new DenseLinear(weight, null);
        this.bias = bias;
        this.tp = tp;
    }

    @Override public int inFeatures() { return local.inFeatures(); }

    @Override public int outFeatures() { return local.outFeatures(); }

    @Override public void forward(Tensor x, Tensor y, double beta) {
        Tensor sum = beta == 0 ? y : backend.empty(y.dtype(), y.shape());
        local.forward(x, sum, 0);                   // (N,out): this rank's partial product
        tp.allReduce(sum, ReduceOp.SUM).await();
        if (bias != null) backend.addBias(sum, bias.valueAs(sum.dtype()));
        if (sum != y) {
            backend.addInPlace(y, sum);
            sum.close();
        }
    }

    @Override public void backward(Tensor dy, Tensor dx, double beta) {
        if (bias != null && bias.trainable()) backend.sumRowsAccumulate(dy, bias.grad()); // the same on every rank
        local.backward(dy, dx, beta);               // dW_slice += dyᵀ·x_slice; dx_slice = dy·W_slice
    }

    @Override public List<Parameter> parameters() {
        List<Parameter> ps = new ArrayList<>(local.parameters());
        if (bias != null) ps.add(bias);
        return ps;
    }

    @Override public void discard() { local.discard(); }
}
