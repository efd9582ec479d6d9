package dev.strata.runtime.nn;

import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * A trainable tensor, its gradient (same shape and dtype) and what kind of weight it is (for decay groups). Under
 * mixed precision a GEMM reads the weight in the activations' dtype: {@link #valueAs} makes that copy on first use
 * and {@link #markUpdated} rewrites it right after each update (unless the update wrote it as it went), so
 * micro-batches between optimizer steps share one conversion and a captured optimizer step captures it too. Layers
 * that keep other copies of a weight (FP8 codes) register them with {@link #onUpdate} and are refreshed the same
 * way. A frozen parameter (the base weights under LoRA) has no gradient: layers skip computing it and the optimizer
 * leaves it alone.
 */
public final class Parameter {
    /** LORA_A (rank,in) and LORA_B (out,rank) are a LoRA adapter's down and up projections. */
    public enum Kind {
        LINEAR_WEIGHT, BIAS, NORM, EMBEDDING, LORA_A, LORA_B;

        public boolean adapter() { return this == LORA_A || this == LORA_B; }
    }

    private final String name;
    private final Kind kind;
    private final Tensor value;
    private Tensor grad; // allocated on first use, so a parameter frozen right after construction never holds one
    private boolean frozen;
    private Tensor compute; // value in another dtype, or null
    private Placement placement;
    private final List<Runnable> refreshers = new ArrayList<>();

    public Parameter(String name, Kind kind, Tensor value) {
        this.name = name;
        this.kind = kind;
        this.value = value;
        this.placement = Placement.replicated(value.shape());
    }

    public String name() { return name; }

    public Kind kind() { return kind; }

    public Tensor value() { return value; }

    /** Where this tensor sits among the ranks: the whole one on every rank until a parallel plan says otherwise. */
    public Placement placement() { return placement; }

    /** Set by a parallel plan from outside the model; the slice it describes must be the shape this rank holds. */
    public void place(Placement p) {
        if (!java.util.Arrays.equals(p.localShape(), value.shape()))
            throw new IllegalArgumentException(name + " holds " + java.util.Arrays.toString(value.shape()) + ", not the slice " + p + " describes");
        this.placement = p;
    }

    /** The gradient (zeros at first), or null when the parameter is frozen. */
    public Tensor grad() {
        if (grad == null && !frozen) grad = value.backend().zeros(value.dtype(), value.shape());
        return grad;
    }

    public boolean trainable() { return !frozen; }

    /** Zeroes the gradient for the next step; one that was released stays unallocated until backward asks for it. */
    public void zeroGrad() {
        if (grad != null) value.backend().zero(grad);
    }

    /**
     * Frees the gradient now; the next {@link #grad} call starts from zeros. How ZeRO-2 drops a gradient this rank
     * does not own once it is on its way to the owner, so no rank holds every gradient.
     */
    public void releaseGrad() {
        if (grad != null) grad.close();
        grad = null;
    }

    /** Whether a gradient is allocated now. */
    public boolean holdsGrad() { return grad != null; }

    /** Stops training this parameter and frees its gradient. */
    public void freeze() {
        frozen = true;
        releaseGrad();
    }

    public int[] shape() { return value.shape(); }

    /** The value in dtype {@code d}: the value itself, or its copy in d. */
    public Tensor valueAs(DType d) {
        if (d == value.dtype()) return value;
        if (compute == null || compute.dtype() != d) {
            if (compute != null) compute.close();
            compute = value.backend().empty(d, value.shape());
            value.backend().copyInto(value, compute);
        }
        return compute;
    }

    /** The value's copy in the GEMMs' dtype made by {@link #valueAs}, or null before one is asked for. */
    public Tensor copy() { return compute; }

    /** Says the value was written (an optimizer step, a load): copies of it are made again now. */
    public void markUpdated() { markUpdated(false); }

    /** As {@link #markUpdated()}; {@code copyWritten}: the update also wrote {@link #copy}, which is then kept. */
    public void markUpdated(boolean copyWritten) {
        if (compute != null && !copyWritten) value.backend().copyInto(value, compute);
        refreshers.forEach(Runnable::run);
    }

    /** Runs {@code refresh} after every update from now on: it rewrites, in place, a copy derived from the value. */
    public void onUpdate(Runnable refresh) { refreshers.add(refresh); }

    @Override public String toString() { return name + " " + value; }
}
