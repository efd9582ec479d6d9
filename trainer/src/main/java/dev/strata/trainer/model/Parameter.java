package dev.strata.trainer.model;

import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;

/**
 * A trainable tensor, its gradient (same shape and dtype) and what kind of weight it is (for decay groups). Under
 * mixed precision a GEMM reads the weight in the activations' dtype: {@link #valueAs} keeps that copy and makes it
 * again only after {@link #markUpdated}, so micro-batches between optimizer steps share one conversion.
 */
public final class Parameter {
    public enum Kind { LINEAR_WEIGHT, BIAS, NORM, EMBEDDING }

    private final String name;
    private final Kind kind;
    private final Tensor value;
    private final Tensor grad;
    private Tensor compute;              // value in another dtype, or null
    private long version, computeVersion;

    public Parameter(String name, Kind kind, Tensor value) {
        this.name = name;
        this.kind = kind;
        this.value = value;
        this.grad = value.backend().zeros(value.dtype(), value.shape());
    }

    public String name() { return name; }

    public Kind kind() { return kind; }

    public Tensor value() { return value; }

    public Tensor grad() { return grad; }

    public int[] shape() { return value.shape(); }

    /** The value in dtype {@code d}: the value itself, or a copy converted after the last update. */
    public Tensor valueAs(DType d) {
        if (d == value.dtype()) return value;
        if (compute == null || compute.dtype() != d) {
            if (compute != null) compute.close();
            compute = value.backend().empty(d, value.shape());
            computeVersion = version - 1;
        }
        if (computeVersion != version) {
            value.backend().copyInto(value, compute);
            computeVersion = version;
        }
        return compute;
    }

    /** Says the value was written (an optimizer step, a load): copies in other dtypes are stale. */
    public void markUpdated() { version++; }

    @Override public String toString() { return name + " " + value; }
}
