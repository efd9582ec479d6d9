package dev.strata.checkpoints.hdfs;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.Manifest;
import dev.strata.checkpoints.Storage;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checkpoints on a MiniDFSCluster of three datanodes with replication 2: sharded saves commit and load back; a
 * writer killed in the middle of a save leaves the previous checkpoint the latest; a datanode stopped during a
 * write leaves either a complete checkpoint or none.
 */
class HdfsCheckpointTest {
    @TempDir static Path base;
    static MiniDFSCluster cluster;
    static String root;

    @BeforeAll
    static void startCluster() throws Exception {
        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, base.toString());
        conf.setInt("dfs.replication", 2);
        conf.setBoolean("dfs.client.block.write.replace-datanode-on-failure.enable", true);
        conf.set("dfs.client.block.write.replace-datanode-on-failure.policy", "ALWAYS");
        cluster = new MiniDFSCluster.Builder(conf).numDataNodes(3).build();
        cluster.waitActive();
        root = cluster.getURI().toString();
    }

    @AfterAll
    static void stopCluster() {
        if (cluster != null) cluster.shutdown(true);
    }

    static Map<String, HostTensor> tensors(double seed, int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = Math.cos(seed + i);
        return Map.of("w", HostTensor.ofDoubles(v, DType.F32, n));
    }

    static Checkpointer.State state(long step) {
        return new Checkpointer.State(Map.of(), Map.of("epoch", 0, "cursor", step), Map.of(), Map.of("step", step), Map.of());
    }

    @Test
    void shardedSavesCommitAndLoadBackFromHdfs() throws Exception {
        Storage fs = Storage.forPath(root);
        assertTrue(fs instanceof HdfsStorage);
        Checkpointer c = new Checkpointer(fs, root + "/sharded/checkpoints", 2, 0);
        HostTensor a = HostTensor.ofDoubles(new double[] {1, 2, 3, 4, 5, 6}, DType.F64, 3, 2);
        for (long step = 1; step <= 3; step++) {
            long s = step;
            var threads = Executors.newFixedThreadPool(3);
            List<CompletableFuture<String>> ranks = new ArrayList<>();
            for (int r = 0; r < 3; r++) {
                int rank = r;
                ranks.add(CompletableFuture.supplyAsync(() -> {
                    double[] row = java.util.Arrays.copyOfRange(a.toDoubles(), 2 * rank, 2 * rank + 2);
                    var piece = new Checkpointer.Piece("a", Manifest.Group.MODEL, a.shape(), 0, rank, HostTensor.ofDoubles(row, DType.F64, 1, 2));
                    try {
                        return c.save(s, rank, 3, List.of(piece), rank == 0 ? state(s) : null, Duration.ofSeconds(60));
                    } catch (Exception e) {
                        throw new RuntimeException(e);
                    }
                }, threads));
            }
            assertTrue(ranks.get(0).get().endsWith(Checkpointer.stepDirName(step)));
            threads.shutdown();
        }
        assertEquals(List.of(root + "/sharded/checkpoints/step-00000002", root + "/sharded/checkpoints/step-00000003"), c.list(), "keep_last 2");
        var loaded = Checkpointer.load(fs, c.latest().orElseThrow());
        assertArrayEquals(a.toDoubles(), loaded.model().get("a").toDoubles());
        assertEquals(3, loaded.manifest().files().size());
    }

    /** A separate JVM commits step 1, then is killed (SIGKILL) in the middle of writing step 2. */
    @Test
    void aWriterKilledDuringASaveLeavesThePreviousCheckpoint() throws Exception {
        String run = root + "/killed";
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), StalledHdfsSave.class.getName(), run)
                .redirectErrorStream(true).start();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream()))) {
            String line;
            while ((line = r.readLine()) != null && !line.equals(StalledHdfsSave.HALF_WRITTEN)) { }
            assertEquals(StalledHdfsSave.HALF_WRITTEN, line, "the child reached the middle of its second save");
        } finally {
            p.destroyForcibly();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        }
        Storage fs = Storage.forPath(run);
        Checkpointer c = Checkpointer.ofRun(fs, run, 3);
        assertTrue(c.latest().orElseThrow().endsWith("step-00000001"), "latest still points at step 1");
        assertFalse(fs.exists(run + "/checkpoints/step-00000002"), "no half-written step 2");
        assertArrayEquals(tensors(1, 1 << 16).get("w").toDoubles(), Checkpointer.load(fs, c.latest().get()).model().get("w").toDoubles());
        c.removeUncommitted();
        c.save(2, tensors(5, 64), tensors(6, 64), state(2));
        assertTrue(c.latest().orElseThrow().endsWith("step-00000002"));
    }

    /** One of the three datanodes stops while a save writes: HDFS carries on with the other two, or the save fails; nothing is committed half-way. */
    @Test
    void aDatanodeStoppedDuringAWrite() throws Exception {
        String run = root + "/datanode";
        Storage hdfs = Storage.forPath(run);
        Checkpointer.ofRun(hdfs, run, 3).save(1, tensors(1, 1 << 10), tensors(2, 1 << 10), state(1));
        Storage stopping = new StoppingStorage(hdfs, 1 << 20, () -> cluster.stopDataNode(0));
        Checkpointer c = Checkpointer.ofRun(stopping, run, 3);
        boolean saved;
        try {
            c.save(2, tensors(3, 1 << 20), tensors(4, 1 << 20), state(2));
            saved = true;
        } catch (Exception e) {
            System.out.println("the save failed cleanly: " + e);
            saved = false;
        }
        assertTrue(((StoppingStorage) stopping).stopped(), "a datanode was stopped during the write");
        Checkpointer after = Checkpointer.ofRun(hdfs, run, 3);
        var latest = Checkpointer.load(hdfs, after.latest().orElseThrow()); // checksums verified
        assertEquals(saved ? 2 : 1, latest.manifest().step());
        if (saved) assertArrayEquals(tensors(3, 1 << 20).get("w").toDoubles(), latest.model().get("w").toDoubles());
        System.out.println("with a datanode stopped mid-write, the save " + (saved ? "completed on the other two" : "failed; step 1 stays the latest"));
    }
}
