package dev.strata.runtime.nn;

import dev.strata.runtime.Tensor;
import java.util.List;
import java.util.Map;

/**
 * y = x·Wᵀ + b over the last dimension. The model is written against this interface only; the job decides what sits
 * behind it (dense, FP8, tensor-parallel, LoRA-wrapped).
 */
public interface Linear {

    /** Features in and out: W is (out,in). */
    int inFeatures();

    int outFeatures();

    /**
     * y (N,out) = x (N,in)·Wᵀ + b + beta·y, beta 0 or 1; keeps what backward needs. The GEMM adds beta·y in its
     * epilogue, while the product is computed, so accumulating costs no pass of its own.
     */
    void forward(Tensor x, Tensor y, double beta);

    /** dx (N,in) = dy (N,out)·W + beta·dx, beta 0 or 1; adds into the parameters' gradients. */
    void backward(Tensor dy, Tensor dx, double beta);

    /** x (N,in) -> a new y (N,out). */
    default Tensor forward(Tensor x) {
        Tensor y = x.backend().empty(x.dtype(), x.size(0), outFeatures());
        forward(x, y, 0);
        return y;
    }

    /** As {@link #forward(Tensor)}, adding y into {@code yAcc}: a LoRA adapter writes its part first. */
    default void forwardAccumulate(Tensor x, Tensor yAcc) { forward(x, yAcc, 1); }

    /** dy (N,out) -> a new dx (N,in). */
    default Tensor backward(Tensor dy) {
        Tensor dx = dy.backend().empty(dy.dtype(), dy.size(0), inFeatures());
        backward(dy, dx, 0);
        return dx;
    }

    /** As {@link #backward(Tensor)}, adding dx into {@code dxAcc}: layers that share an input sum their dx for free. */
    default void backwardAccumulate(Tensor dy, Tensor dxAcc) { backward(dy, dxAcc, 1); }

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
