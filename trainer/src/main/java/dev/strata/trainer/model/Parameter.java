package dev.strata.trainer.model;

import dev.strata.runtime.Tensor;

/** A trainable tensor, its gradient (same shape and dtype) and what kind of weight it is (for decay groups). */
public final class Parameter {
    public enum Kind { LINEAR_WEIGHT, BIAS, NORM, EMBEDDING }

    private final String name;
    private final Kind kind;
    private final Tensor value;
    private final Tensor grad;

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

    @Override public String toString() { return name + " " + value; }
}
