package dev.strata.offload;

import dev.strata.runtime.Backend;
import java.util.List;

/**
 * Page-locked places on the host for the CPU-updated subgroups' weights and gradients. Resident (RAM has room):
 * each subgroup has its own, the weights stay there between steps, so they cross the link down only at the first
 * update (and after a resume), and a gradient comes down as soon as backward finishes it. Otherwise a few blocks
 * taken in turn, which bound how far the copies down run ahead of the CPU.
 */
final class HostStaging implements AutoCloseable {
    /** Window blocks when not resident. */
    static final int WINDOW = 4;
    private final Backend.HostBuffer[] weights, grads;
    private final boolean resident;

    HostStaging(Backend backend, List<Subgroup> onCpu, int stateBytes, boolean resident) {
        this.resident = resident;
        long largest = onCpu.stream().mapToLong(Subgroup::elements).max().orElse(0);
        int count = resident ? onCpu.size() : largest == 0 ? 0 : WINDOW;
        weights = new Backend.HostBuffer[count];
        grads = new Backend.HostBuffer[count];
        for (int i = 0; i < count; i++) {
            long bytes = (resident ? onCpu.get(i).elements() : largest) * stateBytes;
            weights[i] = backend.hostBuffer(bytes);
            grads[i] = backend.hostBuffer(bytes);
        }
    }

    /** What the resident places of these CPU subgroups take: a weight and a gradient an element. */
    static long residentBytes(List<Subgroup> onCpu, int stateBytes) { return 2 * stateBytes * onCpu.stream().mapToLong(Subgroup::elements).sum(); }

    /** What the window takes, for CPU subgroups of up to subgroupBytes a part. */
    static long windowBytes(long subgroupBytes) { return WINDOW * 2L * subgroupBytes; }

    boolean resident() { return resident; }

    /** Where the step's c-th CPU subgroup's weights are (resident) or land, and are updated. */
    Backend.HostBuffer weights(int c) { return weights[c % weights.length]; }

    Backend.HostBuffer grads(int c) { return grads[c % grads.length]; }

    @Override public void close() {
        for (int i = 0; i < weights.length; i++) {
            weights[i].close();
            grads[i].close();
        }
    }
}
