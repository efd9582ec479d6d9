package dev.strata.offload;

import dev.strata.runtime.Backend;
import java.util.List;

/** offload.optimizer = cpu: every subgroup's state stays in its own page-locked host buffers. */
final class HostStateStore implements StateStore {
    private final StateBlock[] blocks;

    HostStateStore(Backend backend, List<Subgroup> subgroups, int stateBytes) {
        blocks = new StateBlock[subgroups.size()];
        for (Subgroup k : subgroups) blocks[k.index()] = new StateBlock(backend, k.elements() * stateBytes, !k.onGpu());
    }

    @Override public String describe() { return "pinned host memory"; }

    @Override public StateBlock open(Subgroup k) { return blocks[k.index()]; }

    @Override public void close() { for (StateBlock b : blocks) b.close(); }
}
