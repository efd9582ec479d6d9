package dev.strata.offload;

import dev.strata.runtime.Backend;
import java.util.List;

/** Subgroups' moments kept in page-locked host memory, each in buffers of its own (offload.optimizer = cpu, and nvme's RAM part). */
final class HostStateStore implements StateStore {
    private final StateBlock[] blocks;
    private long bytes;

    /** Holds the subgroups given, out of count in all. */
    HostStateStore(Backend backend, List<Subgroup> held, int count, int stateBytes) {
        blocks = new StateBlock[count];
        for (Subgroup k : held) {
            blocks[k.index()] = new StateBlock(backend, k.elements() * stateBytes);
            bytes += 2 * blocks[k.index()].capacityBytes;
        }
    }

    boolean holds(Subgroup k) { return blocks[k.index()] != null; }

    @Override public String describe() { return String.format(java.util.Locale.ROOT, "pinned host memory (%.1f GB)", bytes / 1e9); }

    @Override public StateBlock open(Subgroup k) { return blocks[k.index()]; }

    @Override public void close() { for (StateBlock b : blocks) if (b != null) b.close(); }
}
