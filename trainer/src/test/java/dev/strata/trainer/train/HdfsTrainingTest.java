package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.checkpoints.Storage;
import java.nio.file.Path;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * checkpoint.dir on HDFS (a MiniDFSCluster): tp 2 × pp 2 ranks write their shards there, the run stops at step 5
 * and resumes from HDFS at another layout (tp 1 × dp 2), and ends where the run that never stopped ends.
 */
class HdfsTrainingTest {
    @TempDir static Path data;

    @Test
    void aRunCheckpointsToHdfsAndResumesFromIt(@TempDir Path runs) throws Exception {
        TrainerTest.writeData(data);
        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, runs.resolve("hdfs").toString());
        conf.setInt("dfs.replication", 1);
        MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf).numDataNodes(1).build();
        try {
            cluster.waitActive();
            String dir = cluster.getURI() + "/strata/run-a";
            String onHdfs = "checkpoint { dir = \"" + dir + "\", every = 5 }";
            var straight = new Trainer(PipelineParallelTest.job(data, runs.resolve("straight"), "llama", 1, 1, 1, 0, "1f1b", false), TrainerTest.quiet())
                    .run(RunDirectory.Mode.FRESH, 0);
            Path run = runs.resolve("run");
            assertEquals(5, new Trainer(PipelineParallelTest.job(data, run, "llama", 2, 2, 1, 0, "1f1b", false).withOverrides(onHdfs), TrainerTest.quiet())
                    .run(RunDirectory.Mode.FRESH, 5).step());
            Storage hdfs = Storage.forPath(dir);
            assertTrue(new Checkpointer(hdfs, dir, 3, 0).latest().orElseThrow().endsWith("step-00000005"));
            var end = new Trainer(PipelineParallelTest.job(data, run, "llama", 1, 1, 2, 0, "1f1b", false).withOverrides(onHdfs), TrainerTest.quiet())
                    .run(RunDirectory.Mode.RESUME, 0, true);
            assertTrue(end.checkpoint().startsWith("hdfs://") && end.checkpoint().endsWith("step-00000010"), end.checkpoint());
            var a = TrainerTest.losses(runs.resolve("straight")); var b = TrainerTest.losses(run);
            assertEquals(a.size(), b.size());
            for (int i = 0; i < a.size(); i++) assertEquals(a.get(i), b.get(i), 1e-10 * Math.abs(a.get(i)), "step " + (i + 1));
            var x = Checkpointer.load(new LocalStorage(), straight.checkpoint()).model();
            var y = Checkpointer.load(hdfs, end.checkpoint()).model();
            for (var e : x.entrySet()) {
                double[] u = e.getValue().toDoubles(), v = y.get(e.getKey()).toDoubles();
                for (int i = 0; i < u.length; i++) assertEquals(u[i], v[i], 1e-9 * Math.max(1e-3, Math.abs(u[i])), e.getKey());
            }
        } finally {
            cluster.shutdown(true);
        }
    }
}
