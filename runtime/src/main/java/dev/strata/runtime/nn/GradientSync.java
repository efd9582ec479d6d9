package dev.strata.runtime.nn;

import dev.strata.runtime.Tensor;
import java.util.List;

/**
 * The phase of a step between its last backward and the update: on one rank nothing happens; data parallelism
 * reduces the gradients (and the step's summed loss) over its replicas, so every replica clips and updates alike.
 */
public interface GradientSync {
    /** grads: the trainable parameters' gradients in backward order (last layer first); lossSum: (1). Both hold every rank's sum on return. */
    void reduce(List<Tensor> grads, Tensor lossSum);

    /** How many replicas the gradients are summed over (1: none). */
    int replicas();

    GradientSync NONE = new GradientSync() {
        @Override public void reduce(List<Tensor> grads, Tensor lossSum) {}

        @Override public int replicas() { return 1; }
    };
}
