package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Where each subgroup's optimizer state lives between steps, handed out as host buffers while it is updated. */
interface StateStore extends AutoCloseable {
    /** Where the state lives, for the run's log. */
    String describe();

    /** Subgroup k's state in host memory, loaded (waiting for a read ahead when the tier reads). */
    StateBlock open(Subgroup k);

    /** Reads ahead the subgroup that comes next, where the tier reads at all. */
    default void prefetch(Subgroup next) {}

    /** After an update: reads ahead what staging can hold of the next update's first subgroups (order: all, in order). */
    default void readAhead(List<Subgroup> order) {}

    /** Subgroup k's update is done with its block: written back where the tier writes (behind, in the background). */
    default void done(Subgroup k) {}

    /** Subgroup k's block was only read: it goes back as it was, nothing written. */
    default void release(Subgroup k) {}

    /** Whether {@link #done} writes k's block out, so its copies back from the device must have landed first. */
    default boolean writesBack(Subgroup k) { return false; }

    /**
     * Whether k's moments go between where they live and the device straight ({@link #readInto}, {@link #writeFrom}),
     * not through a block: the GPU's subgroups in files, where the backend reads files into its memory (cuFile).
     */
    default boolean direct(Subgroup k) { return false; }

    /**
     * A {@link #direct} subgroup's moments into m and v, after what the store has queued (writes from the same
     * window among it); the event says when they are there. Null: k has none stored yet, they start at zero.
     */
    default Backend.Event readInto(Subgroup k, Tensor m, Tensor v) { throw new UnsupportedOperationException("no direct reads in " + describe()); }

    /** A {@link #direct} subgroup's moments from m and v to where they live once after (the store's to close) is done; the event says when they are. */
    default Backend.Event writeFrom(Subgroup k, Tensor m, Tensor v, Backend.Event after) {
        throw new UnsupportedOperationException("no direct writes in " + describe());
    }

    /** Waits for every write behind, so the state is whole where it lives. */
    default void flush() {}

    @Override void close();

    /**
     * The pinned RAM these settings leave once every subgroup's state and the staging are placed: tier cpu, what
     * the machine has available (90% of it) or pin_memory_gb allows; tier nvme, what pin_memory_gb leaves only if
     * no state went to files (RAM holding moments saves more than RAM holding weights).
     */
    static long spareRam(List<Subgroup> subgroups, int stateBytes, OffloadedAdamW.Settings settings) {
        long staging = CpuSide.stagingBytes(subgroups, stateBytes), state = stateBytes(subgroups, stateBytes);
        double pinGb = settings.pinMemoryGb();
        if (settings.tier().equals("cpu")) {
            long available = availableMemory(), budget = Long.MAX_VALUE;
            if (available > 0) budget = (long) (0.9 * available);
            if (pinGb > 0) budget = Math.min(budget, (long) (pinGb * 1e9));
            return Math.max(0, budget - state - staging);
        }
        return Math.max(0, (long) (pinGb * 1e9) - staging - diskStaging(subgroups, stateBytes) - state);
    }

    /** What every subgroup's moments take, each part padded to a block. */
    private static long stateBytes(List<Subgroup> subgroups, int stateBytes) {
        return subgroups.stream().mapToLong(k -> StateBlock.bytes(k.elements(), stateBytes)).sum();
    }

    /** The nvme tier's staging: its blocks, each as large as the largest subgroup. */
    private static long diskStaging(List<Subgroup> subgroups, int stateBytes) {
        return NvmeStateStore.stagingBytes(subgroups.stream().mapToLong(Subgroup::elements).max().orElse(0) * stateBytes);
    }

    /**
     * The tier settings asked for, checked against the machine first: tier cpu holds every subgroup in pinned RAM;
     * tier nvme holds in RAM what pin_memory_gb leaves after its staging (and hostWeights, the CPU side's resident
     * weights and gradients), the rest in files.
     */
    static StateStore open(Backend backend, List<Subgroup> subgroups, int stateBytes, OffloadedAdamW.Settings settings, long hostWeights) {
        long staging = CpuSide.stagingBytes(subgroups, stateBytes) + hostWeights, state = stateBytes(subgroups, stateBytes);
        double pinGb = settings.pinMemoryGb();
        if (settings.tier().equals("cpu")) {
            long need = state + staging, available = availableMemory();
            if (pinGb > 0 && need > pinGb * 1e9)
                throw new IllegalArgumentException(String.format(Locale.ROOT, "offload.pin_memory_gb = %s is less than the %.1f GB of pinned memory the "
                        + "optimizer state takes; raise it, or use offload.optimizer = nvme", pinGb, need / 1e9));
            if (available > 0 && need > 0.9 * available)
                throw new IllegalArgumentException(String.format(Locale.ROOT, "offload.optimizer = cpu needs %.1f GB of pinned memory for the optimizer state; "
                        + "this machine has %.1f GB available: use offload.optimizer = nvme (offload.pin_memory_gb keeps part of it in RAM)", need / 1e9, available / 1e9));
            return new HostStateStore(backend, subgroups, subgroups.size(), stateBytes);
        }
        long diskStaging = diskStaging(subgroups, stateBytes);
        if (pinGb > 0 && staging + diskStaging > pinGb * 1e9)
            throw new IllegalArgumentException(String.format(Locale.ROOT, "offload.pin_memory_gb = %s is less than the %.2f GB the nvme tier stages "
                    + "through (%d blocks of the largest subgroup, and the CPU's staging); raise it or lower offload.subgroup_mparams", pinGb,
                    (staging + diskStaging) / 1e9, NvmeStateStore.STAGING));
        long ramLeft = pinGb > 0 ? (long) (pinGb * 1e9) - staging - diskStaging : 0;
        List<Subgroup> inRam = new ArrayList<>(), onDisk = new ArrayList<>();
        long ramBytes = 0, diskBytes = 0; // what each tier holds
        for (Subgroup k : subgroups) {
            long bytes = StateBlock.bytes(k.elements(), stateBytes);
            if (onDisk.isEmpty() && ramBytes + bytes <= ramLeft) {
                inRam.add(k);
                ramBytes += bytes;
            } else {
                onDisk.add(k);
                diskBytes += bytes;
            }
        }
        Backend.FileIo io = fileIo(backend, settings.cufile());
        NvmeStateStore disk;
        try {
            disk = new NvmeStateStore(backend, onDisk, stateBytes, settings.nvmeDir(), io, settings.cufile().equals("true"));
        } catch (RuntimeException e) {
            if (io != null) io.close(); // a store that did not open lets it go
            throw e;
        }
        if (inRam.isEmpty()) return disk;
        return new TieredStateStore(new HostStateStore(backend, inRam, subgroups.size(), stateBytes), disk, onDisk, diskBytes);
    }

    /**
     * What moves the GPU's subgroups' moments between their files and the device: cuFile where the machine has
     * GPUDirect Storage (auto), also in its compatibility mode (true); null: through the staging blocks.
     */
    private static Backend.FileIo fileIo(Backend backend, String cufile) {
        if (cufile.equals("false")) return null;
        try {
            return backend.fileIo(cufile.equals("true"));
        } catch (RuntimeException e) {
            if (cufile.equals("auto")) return null;
            throw new IllegalArgumentException("offload.cufile = true, but cuFile cannot be used here: " + e.getMessage() + "; set offload.cufile = auto or false");
        }
    }

    /** MemAvailable from /proc/meminfo, in bytes; 0 where it cannot be read. */
    private static long availableMemory() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo")))
                if (line.startsWith("MemAvailable:")) return Long.parseLong(line.replaceAll("\\D", "")) * 1024;
        } catch (IOException | NumberFormatException e) {
            return 0;
        }
        return 0;
    }
}
