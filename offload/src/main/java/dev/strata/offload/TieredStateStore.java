package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import java.util.List;
import java.util.Locale;

/**
 * offload.optimizer = nvme with offload.pin_memory_gb room to spare: the first subgroups' moments stay in pinned RAM,
 * the rest go to files (ZeRO-Infinity's CPU + NVMe placement), so only what RAM cannot hold costs disk time.
 */
final class TieredStateStore implements StateStore {
    private final HostStateStore ram;
    private final NvmeStateStore disk;
    private final List<Subgroup> onDisk;
    private final long diskBytes;

    TieredStateStore(HostStateStore ram, NvmeStateStore disk, List<Subgroup> onDisk, long diskBytes) {
        this.ram = ram;
        this.disk = disk;
        this.onDisk = onDisk;
        this.diskBytes = diskBytes;
    }

    @Override public String describe() { return ram.describe() + " and " + disk.describe() + String.format(Locale.ROOT, " (%.1f GB)", diskBytes / 1e9); }

    @Override public StateBlock open(Subgroup k) { return ram.holds(k) ? ram.open(k) : disk.open(k); }

    /** Reads ahead the next subgroup on disk from next on: the RAM ones between need no reading. */
    @Override public void prefetch(Subgroup next) {
        for (Subgroup k : onDisk)
            if (k.index() >= next.index()) {
                disk.prefetch(k);
                return;
            }
    }

    @Override public void readAhead(List<Subgroup> order) { disk.readAhead(order.stream().filter(k -> !ram.holds(k)).toList()); }

    @Override public void done(Subgroup k) { if (!ram.holds(k)) disk.done(k); }

    @Override public void release(Subgroup k) { if (!ram.holds(k)) disk.release(k); }

    @Override public boolean writesBack(Subgroup k) { return !ram.holds(k); }

    @Override public boolean direct(Subgroup k) { return !ram.holds(k) && disk.direct(k); }

    @Override public Backend.Event readInto(Subgroup k, Tensor m, Tensor v) { return disk.readInto(k, m, v); }

    @Override public Backend.Event writeFrom(Subgroup k, Tensor m, Tensor v, Backend.Event after) {
        return disk.writeFrom(k, m, v, after);
    }

    @Override public void flush() { disk.flush(); }

    @Override public void close() {
        try {
            disk.close();
        } finally {
            ram.close();
        }
    }
}
