package dev.strata.trainer.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CkptCommandTest {
    @Test
    void inspectAndVerifyAcceptARunDirectoryAndRejectACorruptFile(@TempDir Path run) throws Exception {
        var w = HostTensor.ofDoubles(new double[] {1, 2, 3, 4}, DType.F32, 2, 2);
        String dir = Checkpointer.ofRun(new LocalStorage(), run.toString(), 2).save(3, Map.of("w", w), Map.of("exp_avg.w", w),
                new Checkpointer.State(Map.of(), Map.of("epoch", 0, "cursor", 6), Map.of(), Map.of("step", 3), Map.of()));
        var out = new StringWriter();
        var cl = Main.commandLine();
        cl.setOut(new PrintWriter(out));
        assertEquals(0, cl.execute("ckpt", "verify", run.toString()));
        assertEquals(0, cl.execute("ckpt", "inspect", dir));
        try (RandomAccessFile f = new RandomAccessFile(Path.of(dir, "optimizer-00000.safetensors").toFile(), "rw")) {
            f.seek(f.length() - 1);
            f.write(9);
        }
        var err = new StringWriter();
        cl.setErr(new PrintWriter(err));
        assertEquals(2, cl.execute("ckpt", "verify", dir));
        assertTrue(err.toString().contains("optimizer-00000.safetensors") && err.toString().contains("SHA-256"), err.toString());
    }
}
