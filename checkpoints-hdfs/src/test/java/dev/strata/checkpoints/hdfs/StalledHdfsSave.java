package dev.strata.checkpoints.hdfs;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.Storage;

/** Child process of HdfsCheckpointTest: commits step 1 to HDFS, then hangs in the middle of writing step 2 until killed. */
public final class StalledHdfsSave {
    static final String HALF_WRITTEN = "HALF-WRITTEN";

    public static void main(String[] args) throws Exception {
        Storage hdfs = Storage.forPath(args[0]);
        Checkpointer.ofRun(hdfs, args[0], 3).save(1, HdfsCheckpointTest.tensors(1, 1 << 16), HdfsCheckpointTest.tensors(2, 1 << 16),
                HdfsCheckpointTest.state(1));
        Storage stalling = new StoppingStorage(hdfs, 100_000, () -> {
            System.out.println(HALF_WRITTEN);
            System.out.flush();
            try {
                Thread.sleep(Long.MAX_VALUE);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        Checkpointer.ofRun(stalling, args[0], 3).save(2, HdfsCheckpointTest.tensors(3, 1 << 16), HdfsCheckpointTest.tensors(4, 1 << 16),
                HdfsCheckpointTest.state(2));
    }
}
