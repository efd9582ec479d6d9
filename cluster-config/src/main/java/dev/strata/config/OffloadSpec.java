package dev.strata.config;

/**
 * Where the optimizer's state lives: {@code optimizer = none} (on the device), {@code cpu} (pinned host memory) or
 * {@code nvme} (files under nvmeDir, streamed through host memory); gpuFraction: the share of parameters the GPU
 * updates each step (their state streamed in), NaN for auto (measured at start); pinMemoryGb: the page-locked host
 * memory the nvme tier may stage through (0: as it needs); subgroupMparams: the size of the subgroups the state is
 * updated and moved in, millions of parameters; gpuStateGb: the optimizer state kept on the device (the GPU tier),
 * only the rest offloaded, NaN for auto (what the memory plan leaves free); updateDuringBackward: the CPU updates
 * its subgroups as their gradients land, kept when the norm clips nothing; updateDuringForward (true, cpu, false):
 * the update after backward runs on into the next forward, each layer waiting for its own weights: both sides', the
 * CPU's only (the GPU's subgroups updated before the forward), or neither; activations: the recomputed blocks' inputs
 * wait for backward in pinned host memory; cufile (auto, true, false): the nvme tier moves the GPU's subgroups' moments
 * between files and device memory by cuFile, where the machine has GPUDirect Storage (auto) or always (true).
 */
public record OffloadSpec(String optimizer, String nvmeDir, double gpuFraction, double pinMemoryGb, double subgroupMparams, double gpuStateGb,
                          boolean updateDuringBackward, String updateDuringForward, boolean activations, String cufile) {
    public boolean enabled() { return !optimizer.equals("none"); }

    public boolean autoSplit() { return Double.isNaN(gpuFraction); }

    /** offload.gpu_state_gb = auto: the GPU tier takes what the memory plan leaves of the device. */
    public boolean autoGpuState() { return Double.isNaN(gpuStateGb); }

    /** The subgroups' target size in parameters. */
    public long subgroupElements() { return Math.max(1, Math.round(subgroupMparams * 1e6)); }

    static OffloadSpec from(Fields f) {
        String optimizer = f.oneOf("offload.optimizer", "none", "cpu", "nvme");
        String dir = f.string("offload.nvme_dir");
        f.require(!optimizer.equals("nvme") || !dir.isEmpty(), "offload.optimizer = nvme needs offload.nvme_dir, a directory on a local NVMe disk");
        String split = f.string("offload.gpu_fraction");
        double fraction;
        if (split.equals("auto")) {
            fraction = Double.NaN;
        } else {
            try {
                fraction = Double.parseDouble(split);
            } catch (NumberFormatException e) {
                fraction = -1;
            }
            f.require(fraction >= 0 && fraction <= 1, "offload.gpu_fraction must be auto or a number from 0 to 1, got " + split);
        }
        double pin = f.number("offload.pin_memory_gb");
        f.require(pin >= 0, "offload.pin_memory_gb must be 0 (as needed) or more, got " + pin);
        double subgroup = f.number("offload.subgroup_mparams");
        f.require(subgroup > 0, "offload.subgroup_mparams must be above 0, got " + subgroup);
        String kept = f.string("offload.gpu_state_gb");
        double gpuState;
        try {
            gpuState = kept.equals("auto") ? Double.NaN : Double.parseDouble(kept);
        } catch (NumberFormatException e) {
            gpuState = -1;
        }
        f.require(Double.isNaN(gpuState) || gpuState >= 0, "offload.gpu_state_gb must be auto, 0 (all the state offloaded) or more GB, got " + kept);
        boolean early = f.bool("offload.update_during_backward");
        String late = f.oneOf("offload.update_during_forward", "true", "cpu", "false");
        boolean activations = f.bool("offload.activations");
        f.require(!activations || !f.string("training.activation_checkpointing").equals("none"),
                "offload.activations = true moves the inputs of recomputed blocks to host memory; set training.activation_checkpointing = selective or full");
        String cufile = f.oneOf("offload.cufile", "auto", "true", "false");
        return new OffloadSpec(optimizer, dir, fraction, pin, subgroup, gpuState, early, late, activations, cufile);
    }
}
