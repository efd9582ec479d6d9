package dev.strata.offload;

import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Where the offloaded state starts: the subgroups and the side that updates each (offload.gpu_fraction, or the split
 * model's best), whether the CPU side's weights and gradients are kept in pinned RAM beside the moments (resident;
 * the model's split is chosen again for streaming them where they are not), why the CPU cannot update during
 * backward (null: it can, or has nothing to update), and why the update cannot run on into the next forward (null:
 * it can, or was not asked to).
 */
record FirstSplit(List<Subgroup> subgroups, double fraction, int cpuDown, boolean resident, boolean gradsDuringBackward, long residentBytes, long earlyBytes,
                  String afterBackward, String beforeForward) {

    /**
     * offloaded (n elements) split beside the GPU tier's kept elements; model: null where the fraction is given;
     * unsynced: one process, so the last backward's gradients are final and can come down as it finishes them.
     */
    static FirstSplit choose(List<Parameter> offloaded, long n, long kept, SplitModel model, OffloadedAdamW.Settings settings, boolean unsynced, int stateBytes) {
        int cpuDown = unsynced ? 0 : 1; // copies down after backward a CPU-side element: none, its gradient, or its weight too
        double fraction = model != null ? model.bestFraction(n, kept, cpuDown) : settings.gpuFraction();
        List<Subgroup> split = Subgroup.split(offloaded, settings.subgroupElements(), fraction);
        long residentBytes = HostStaging.residentBytes(CpuSide.of(split), stateBytes), spare = StateStore.spareRam(split, stateBytes, settings);
        boolean resident = residentBytes <= spare;
        if (!resident) {
            cpuDown = 2;
            if (model != null) split = Subgroup.split(offloaded, settings.subgroupElements(), fraction = model.bestFraction(n, kept, cpuDown));
        }
        List<Subgroup> onCpu = CpuSide.of(split);
        boolean gradsDuringBackward = resident && unsynced;
        long earlyBytes = EarlyUpdates.bytes(onCpu, stateBytes);
        String afterBackward = onCpu.isEmpty() ? null : !settings.updateDuringBackward() ? "offload.update_during_backward = false"
                : !gradsDuringBackward ? (resident ? "a sync changes the gradients after backward" : "its weights are not kept in RAM")
                : !settings.tier().equals("cpu") ? "the nvme tier reads the moments in turn"
                : residentBytes + earlyBytes > spare ? String.format(Locale.ROOT, "no room for its %.1f GB of spare pinned buffers", earlyBytes / 1e9) : null;
        String beforeForward = !settings.cpuDuringForward() ? null : !settings.tier().equals("cpu") ? "the nvme tier reads the moments in turn"
                : !unsynced ? "the ranks exchange parameters or gradients after the update"
                : !resident && !onCpu.isEmpty() ? "the CPU side's weights are not kept in RAM" : null;
        return new FirstSplit(split, fraction, cpuDown, resident, gradsDuringBackward, residentBytes, earlyBytes, afterBackward, beforeForward);
    }

    /**
     * The log's lines: where the state of n offloaded elements lives (in the store described), who updates it, and
     * when each side does (the CPU during backward, into the next forward where lateCpu or lateGpu, or why not).
     */
    List<String> describe(long n, String store, int threads, boolean early, boolean lateCpu, boolean lateGpu) {
        long onGpu = subgroups.stream().filter(Subgroup::onGpu).mapToLong(Subgroup::elements).sum();
        boolean gpuLate = lateGpu && onGpu > 0;
        List<String> lines = new ArrayList<>();
        lines.add(String.format(Locale.ROOT, "offload: AdamW state of %,d parameters in %s, %d subgroups, %d updated by the GPU (%.0f%%), the rest by %d CPU threads; "
                        + "their weights and gradients %s", n, store, subgroups.size(), subgroups.stream().filter(Subgroup::onGpu).count(), 100.0 * onGpu / n, threads,
                resident ? String.format(Locale.ROOT, "kept in pinned RAM (%.1f GB)", residentBytes / 1e9)
                        : "streamed through " + HostStaging.WINDOW + " staging blocks (RAM has no room to keep them)"));
        if (early) lines.add(String.format(Locale.ROOT, "offload: the CPU updates each of its subgroups as soon as the last backward has sent its gradients, "
                + "kept when the global norm clips nothing (%.1f GB of spare pinned buffers)", earlyBytes / 1e9));
        else if (afterBackward != null) lines.add("offload: the CPU updates its subgroups after backward (" + afterBackward + ")");
        if (lateCpu || gpuLate)
            lines.add("offload: " + (lateCpu && gpuLate ? "both sides' updates after backward run" : gpuLate ? "the GPU's subgroups' updates run"
                    : "what the CPU updates after backward runs") + " on into the next forward, each layer waiting for its own weights");
        else if (beforeForward != null) lines.add("offload: the update after backward ends before the next forward (" + beforeForward + ")");
        return lines;
    }
}
