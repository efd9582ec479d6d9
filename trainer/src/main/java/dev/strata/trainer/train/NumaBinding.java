package dev.strata.trainer.train;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * Where a host has several NUMA nodes, a rank process runs on its GPU's node ({@code numactl --cpunodebind=N
 * --preferred=N}): its pinned buffers (offloaded optimizer state, checkpoint snapshots) and the CPU AdamW's threads
 * then sit beside the GPU's PCIe root, not across the link between sockets. Preferred, not bound: a node that runs
 * out of memory lends from the others rather than failing. One node, an unknown one, or no numactl: no change.
 */
public record NumaBinding(Path sysfs, Path numactl) {
    /** This machine's: /sys, and numactl where PATH has it (null: not installed). */
    public static NumaBinding here() {
        Path found = null;
        for (String dir : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator)) {
            Path candidate = Path.of(dir.isEmpty() ? "." : dir, "numactl");
            if (Files.isExecutable(candidate)) {
                found = candidate;
                break;
            }
        }
        return new NumaBinding(Path.of("/sys"), found);
    }

    /** How many NUMA nodes the host has (1 where sysfs does not say). */
    int nodes() {
        try (Stream<Path> dirs = Files.list(sysfs.resolve("devices/system/node"))) {
            return (int) Math.max(1, dirs.filter(d -> d.getFileName().toString().matches("node\\d+")).count());
        } catch (IOException e) {
            return 1;
        }
    }

    /** The node of the PCI device at pciBusId (e.g. 0000:17:00.0), or -1 where the platform does not say. */
    int nodeOf(String pciBusId) {
        try {
            return Integer.parseInt(Files.readString(sysfs.resolve("bus/pci/devices").resolve(pciBusId.toLowerCase(java.util.Locale.ROOT)).resolve("numa_node")).trim());
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
    }

    /** What goes before a rank's command line to run it on the node of the GPU at pciBusId; empty where nothing is to gain. */
    public List<String> prefix(String pciBusId) {
        int node = nodeOf(pciBusId);
        if (numactl == null || node < 0 || nodes() < 2) return List.of();
        return List.of(numactl.toString(), "--cpunodebind=" + node, "--preferred=" + node);
    }
}
