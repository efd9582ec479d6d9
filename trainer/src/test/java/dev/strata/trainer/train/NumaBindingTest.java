package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A rank runs on its GPU's NUMA node only where the host has several and numactl: read from sysfs as the kernel lays it out. */
class NumaBindingTest {
    static Path sysfs(Path root, int nodes, String gpu, String node) throws Exception {
        for (int n = 0; n < nodes; n++) Files.createDirectories(root.resolve("devices/system/node/node" + n));
        Files.createDirectories(root.resolve("devices/system/node/possible-not-a-node"));
        Path device = Files.createDirectories(root.resolve("bus/pci/devices/" + gpu));
        Files.writeString(device.resolve("numa_node"), node + "\n");
        return root;
    }

    @Test
    void aRankRunsOnItsGpusNodeWhereThereAreSeveral(@TempDir Path dir) throws Exception {
        Path numactl = Files.createFile(dir.resolve("numactl"));
        var two = new NumaBinding(sysfs(dir.resolve("two"), 2, "0000:9a:00.0", "1"), numactl);
        assertEquals(2, two.nodes());
        assertEquals(1, two.nodeOf("0000:9A:00.0"), "CUDA's bus ids may be upper case, sysfs's are not");
        assertEquals(List.of(numactl.toString(), "--cpunodebind=1", "--preferred=1"), two.prefix("0000:9A:00.0"));
        assertEquals(-1, two.nodeOf("0000:17:00.0"), "a device sysfs does not list");
        assertEquals(List.of(), two.prefix("0000:17:00.0"));
        assertEquals(List.of(), new NumaBinding(two.sysfs(), null).prefix("0000:9a:00.0"), "no numactl: no binding");
        var one = new NumaBinding(sysfs(dir.resolve("one"), 1, "0000:17:00.0", "0"), numactl);
        assertEquals(List.of(), one.prefix("0000:17:00.0"), "one node: nothing to gain");
        var unknown = new NumaBinding(sysfs(dir.resolve("unknown"), 2, "0000:17:00.0", "-1"), numactl);
        assertEquals(List.of(), unknown.prefix("0000:17:00.0"), "the platform does not say: no binding");
        assertEquals(1, new NumaBinding(dir.resolve("absent"), numactl).nodes(), "no sysfs: one node");
    }
}
