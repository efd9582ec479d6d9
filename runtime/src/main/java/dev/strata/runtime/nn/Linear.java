package dev.strata.runtime.nn;

import dev.strata.runtime.Tensor;
import java.util.List;

/**
 * y = x·Wᵀ + b over the last dimension. The model is written against this interface only; the job decides what sits
 * behind it (dense, FP8, tensor-parallel, LoRA-wrapped).
 */
public interface Linear {

    /** x (N,in) -> y (N,out); keeps what backward needs. */
    Tensor forward(Tensor x);

    /** dy (N,out) -> dx (N,in); adds into the parameters' gradients. */
    Tensor backward(Tensor dy);

    /** As {@link #backward}, adding dx into {@code dxAcc} (N,in): layers that share an input sum their dx for free. */
    void backwardAccumulate(Tensor dy, Tensor dxAcc);

    List<Parameter> parameters();

    /** Frees what forward kept for backward, when no backward follows (evaluation). */
    default void discard() {}

    /**
     * After an optimizer update: the inputs of the last step that held a NaN or an infinity ("x", "dy"), so that a
     * skipped step names the layer where it went wrong. Only layers that measure their inputs (FP8) know; it reads
     * back from the device, so it is for reports, not for every step.
     */
    default List<String> nonFiniteInputs() { return List.of(); }

    /** Builds the linear named {@code name} (e.g. "layers.0.attention.wq"). */
    @FunctionalInterface
    interface Maker {
        Linear make(String name, int in, int out, boolean bias);
    }
}
