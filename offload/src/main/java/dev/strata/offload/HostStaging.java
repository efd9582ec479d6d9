package dev.strata.offload;

import dev.strata.runtime.Backend;

/**
 * Page-locked landing places for CPU-updated subgroups on their way through the host: a few blocks, taken in turn,
 * each holding one subgroup's weights and gradients while the CPU updates them. The state itself stays in its
 * {@link StateStore}; these only bound how far the copies down run ahead of the CPU.
 */
final class HostStaging implements AutoCloseable {
    private final Backend.HostBuffer[] weights, grads;

    HostStaging(Backend backend, int count, long bytes) {
        weights = new Backend.HostBuffer[count];
        grads = new Backend.HostBuffer[count];
        for (int i = 0; i < count; i++) {
            weights[i] = backend.hostBuffer(bytes);
            grads[i] = backend.hostBuffer(bytes);
        }
    }

    /** Where the step's i-th CPU subgroup's weights land, and are updated. */
    Backend.HostBuffer weights(int i) { return weights[i % weights.length]; }

    Backend.HostBuffer grads(int i) { return grads[i % grads.length]; }

    @Override public void close() {
        for (int i = 0; i < weights.length; i++) {
            weights[i].close();
            grads[i].close();
        }
    }
}
