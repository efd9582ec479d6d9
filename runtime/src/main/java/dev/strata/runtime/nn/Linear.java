package dev.strata.runtime.nn;

import dev.strata.runtime.Tensor;
import java.util.List;
import java.util.Map;

/**
 * y = x·Wᵀ + b over the last dimension. The model is written against this interface only; the job decides what sits
 * behind it (dense, FP8, tensor-parallel, LoRA-wrapped).
 */
public interface Linear {

    /** x (N,in) -> y (N,out); keeps what backward needs. */
    Tensor forward(Tensor x);

    /**
     * As {@link #forward}, adding y into {@code yAcc} (N,out) inside the GEMM (its epilogue reads yAcc while the
     * product is computed), as a LoRA adapter wants for the part it wrote first.
     */
    void forwardAccumulate(Tensor x, Tensor yAcc);

    /** dy (N,out) -> dx (N,in); adds into the parameters' gradients. */
    Tensor backward(Tensor dy);

    /** As {@link #backward}, adding dx into {@code dxAcc} (N,in): layers that share an input sum their dx for free. */
    void backwardAccumulate(Tensor dy, Tensor dxAcc);

    List<Parameter> parameters();

    /** Frees what forward kept for backward, when no backward follows (evaluation). */
    default void discard() {}

    /**
     * The end of an optimizer step, before its update, for every layer, frozen or not: layers that keep statistics
     * per step (FP8 amax histories) start the next one.
     */
    default void endStep() {}

    /**
     * Tensors besides the parameters that a resumed run needs to go on exactly as the interrupted one (FP8 amax
     * histories), by name within the layer; checkpoints hold them with the optimizer state.
     */
    default Map<String, Tensor> stepState() { return Map.of(); }

    /** Called after {@link #stepState} tensors were overwritten from a checkpoint. */
    default void stepStateLoaded() {}

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
