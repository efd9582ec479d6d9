package dev.strata.runtime.nn;

import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import java.util.Map;

/**
 * What a training step needs of an optimizer, below the modules that supply one: AdamW here, ZeRO's sharded AdamW
 * through a {@link GradientSync}, offloaded optimizers in {@code offload}. An update is enqueued without waiting for
 * the device ({@link #enqueueUpdate}), so it can be captured in a CUDA graph; the norm is read back after.
 */
public interface Optimizer extends AutoCloseable {
    /** Counts the next step and writes its learning rate (and whatever else the update reads) to the device. */
    void prepareStep(double lr);

    /** A micro-batch's forward and backward come next; last: the step's last, whose backward finishes the gradients. */
    default void startMicroBatch(boolean last) {}

    /**
     * Backward has finished these parameters' gradients for this micro-batch (a layer's): an optimizer whose state
     * is elsewhere may start moving the step's last ones, overlapped with the rest of backward.
     */
    default void gradientsDone(java.util.List<Parameter> params) {}

    /**
     * Enqueues one update of every parameter this optimizer holds, clipped to a global norm of maxGradNorm (0: off).
     * An optimizer whose host takes part may return with parameters still to write (offload, once a forward has
     * called {@link #parametersNeeded}): each is written before {@link #parametersNeeded} or {@link #awaitUpdate}
     * returns for it, and its gradient may still be read then ({@link #gradientPending}).
     */
    void enqueueUpdate(double maxGradNorm);

    /**
     * The next forward is about to read these parameters (a layer's): the compute stream waits for their new values
     * where the last update is still writing them, so a layer starts as soon as its own weights are back.
     */
    default void parametersNeeded(java.util.List<Parameter> params) {}

    /**
     * Whether the last update has still to read p's gradient (offload: a GPU subgroup updated when the next forward
     * needs it): the training step leaves that gradient as it is, and the optimizer zeroes it once read.
     */
    default boolean gradientPending(Parameter p) { return false; }

    /** Waits until the last update has written every parameter: before anything but a forward reads them (a checkpoint, a sample). */
    default void awaitUpdate() {}

    /** The global gradient norm the last update saw (waits for it); not finite when the update was skipped. */
    double lastGradNorm();

    /** The last update was skipped (non-finite gradients): its step number goes to the next one. */
    void stepSkipped();

    /** Whether an update may be captured in a CUDA graph: not when the host takes part in it (offloaded state). */
    default boolean capturable() { return true; }

    long stepCount();

    /** Resumes counting from a checkpoint's step count; called once the tensors of {@link #state} have been loaded. */
    void restore(long stepCount);

    /** The optimizer's tensors on the device by checkpoint name, e.g. {@code exp_avg.<param>}: all of them unless offloaded. */
    Map<String, Tensor> state();

    /**
     * Whether state lives in host memory (offloaded, and larger than the device would hold): checkpoints then
     * write it from there and a resume reads it back there ({@link #hostState}), beside what {@link #state} holds.
     */
    default boolean stateOnHost() { return false; }

    /**
     * The state where it lives, by checkpoint name: live views a checkpoint writes from (so the write completes
     * before the next update) and a resume reads into before {@link #restore}. Only when {@link #stateOnHost}.
     */
    default Map<String, HostTensor> hostState() { throw new UnsupportedOperationException("this optimizer's state is on the device: use state()"); }

    @Override void close();
}
