package dev.strata.offload;

/**
 * Bytes offloaded optimizer state takes on each tier: the device's (the GPU tier and the windows), pinned host
 * memory (staging included), files; and what the CPU side's weights and gradients may add to RAM where it has room
 * (hostWeights: all of them, the most; the measured split decides how many there are).
 */
public record Footprint(long device, long ram, long disk, long hostWeights) {
    /** What offload.update_during_backward adds to that at the most: a spare weight and two moments a CPU-side element. */
    public long earlySpares() { return hostWeights / 2 * 3; }

    /**
     * What the state of n elements in subgroups of subgroupElements takes where these settings put it, as
     * {@code strata plan} shows it (a subgroup counted at its target size; the GPU tier as many bytes as it may keep).
     */
    public static Footprint of(long n, int stateBytes, String tier, double pinMemoryGb, long subgroupElements, double gpuStateGb) {
        long kept = Math.min(n, (long) (gpuStateGb * 1e9) / (2L * stateBytes)), rest = n - kept;
        long sub = Math.min(rest, subgroupElements) * stateBytes, state = 2 * rest * stateBytes;
        long staging = HostStaging.windowBytes(sub) + (tier.equals("nvme") ? NvmeStateStore.STAGING * 2L * sub : 0);
        long inRam = tier.equals("cpu") ? state : Math.max(0, Math.min(state, (long) (pinMemoryGb * 1e9) - staging));
        return new Footprint(2 * kept * stateBytes + DeviceWindows.COUNT * 2L * sub, inRam + staging, state - inRam, state);
    }
}
