package dev.strata.runtime.nn;

import dev.strata.runtime.Tensor;
import java.util.List;

/**
 * The phases of a step between its last backward and the next forward that data parallelism fills in: reduce the
 * gradients (and the step's summed loss) over the replicas; under a sharded optimizer (ZeRO), say which parameters
 * this rank updates, complete the gradient norm from every rank's share, and hand each updated parameter to the
 * others. On one rank each phase does nothing.
 */
public interface GradientSync {
    /** A micro-batch's forward and backward come next; last: the step's last, whose backward finishes the gradients. */
    default void startMicroBatch(boolean last) {}

    /** Backward has finished these parameters' gradients (a layer's): a sync may start reducing them now, overlapped with the rest. */
    default void gradientsDone(List<Parameter> params) {}

    /**
     * After the step's last backward: every gradient reduced (those not yet started now), and lossSum (1) holding
     * every rank's sum. params: the trainable parameters in backward order (last layer first).
     */
    void reduce(List<Parameter> params, Tensor lossSum);

    /** Whether a step may be captured as a CUDA graph: nothing between its kernels waits on the host or another rank. */
    default boolean capturable() { return true; }

    /** How many replicas the gradients are summed over (1: none). */
    int replicas();

    /** Whether this rank's optimizer updates p (and so holds its state); every parameter unless the state is sharded. */
    default boolean updates(Parameter p) { return true; }

    /**
     * Whether this rank adds p's gradient into the global norm: a tensor held whole on several ranks of a group that
     * does not reduce it (tensor parallelism's replicated weights) is counted on one of them only.
     */
    default boolean countsInNorm(Parameter p) { return true; }

    /** sumSquares (1): the squared norm of the gradients this rank's update saw, made the norm's over every rank. */
    default void reduceNormSquares(Tensor sumSquares) {}

    /** After the update: the parameters other ranks updated arrive here. */
    default void gatherParameters(List<Parameter> params) {}

    GradientSync NONE = new GradientSync() {
        @Override public void reduce(List<Parameter> params, Tensor lossSum) {}

        @Override public int replicas() { return 1; }
    };
}
