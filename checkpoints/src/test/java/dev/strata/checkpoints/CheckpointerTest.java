package dev.strata.checkpoints;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointerTest {
    final LocalStorage fs = new LocalStorage();

    static Map<String, HostTensor> tensors(double seed, int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = Math.sin(seed + i);
        return Map.of("w", HostTensor.ofDoubles(v, DType.F32, n));
    }

    static Checkpointer.State state(long step) {
        return new Checkpointer.State(Map.of("seed", 1), Map.of("epoch", 0, "cursor", step), Map.of("seed", 1),
                Map.of("step", step), Map.of("train_loss", 1.0));
    }

    @Test
    void savesLoadsAndKeepsTheLastN(@TempDir Path run) throws Exception {
        Checkpointer c = new Checkpointer(fs, run.toString(), 2);
        for (int step = 1; step <= 4; step++) c.save(step, tensors(step, 16), tensors(-step, 16), state(step));
        assertEquals(List.of(run.resolve("checkpoints/step-00000003").toString(), run.resolve("checkpoints/step-00000004").toString()), c.list());
        String latest = c.latest().orElseThrow();
        assertTrue(latest.endsWith("step-00000004"));
        var loaded = Checkpointer.load(fs, latest);
        assertEquals(4, loaded.manifest().step());
        assertArrayEquals(tensors(4, 16).get("w").toDoubles(), loaded.model().get("w").toDoubles());
        assertArrayEquals(tensors(-4, 16).get("w").toDoubles(), loaded.optimizer().get("w").toDoubles());
        assertEquals(64, loaded.manifest().tensors().get(0).sha256().length());
    }

    @Test
    void aCorruptTensorIsRefusedNamingTheFile(@TempDir Path run) throws Exception {
        Checkpointer c = new Checkpointer(fs, run.toString(), 3);
        String dir = c.save(1, tensors(1, 64), tensors(2, 64), state(1));
        Path model = Path.of(dir, Checkpointer.MODEL);
        try (RandomAccessFile f = new RandomAccessFile(model.toFile(), "rw")) {
            f.seek(f.length() - 5);
            f.write(0x7f);
        }
        var e = assertThrows(IllegalArgumentException.class, () -> Checkpointer.load(fs, dir));
        assertTrue(e.getMessage().contains(model.toString()) && e.getMessage().contains("SHA-256"), e.getMessage());
    }

    /** A save killed half-way (SIGKILL of a separate JVM) leaves the previous checkpoint and pointer intact. */
    @Test
    void aSaveKilledHalfWayLeavesThePreviousCheckpoint(@TempDir Path run) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), InterruptedSave.class.getName(), run.toString())
                .redirectErrorStream(true).start();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream()))) {
            String line;
            while ((line = r.readLine()) != null && !line.equals(InterruptedSave.HALF_WRITTEN)) { }
            assertEquals(InterruptedSave.HALF_WRITTEN, line, "child reached the middle of the second save");
        }
        p.destroyForcibly();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));

        Checkpointer c = new Checkpointer(fs, run.toString(), 3);
        assertTrue(c.latest().orElseThrow().endsWith("step-00000001"), "latest still points at step 1");
        assertFalse(Files.exists(run.resolve("checkpoints/step-00000002")), "no half-written step 2 visible");
        assertTrue(Files.list(run.resolve("checkpoints")).anyMatch(f -> f.getFileName().toString().contains(".tmp-")), "the killed save's temporary exists");
        assertEquals(1, Checkpointer.load(fs, c.latest().orElseThrow()).manifest().step());
        c.save(2, tensors(2, 1 << 16), tensors(3, 1 << 16), state(2));
        assertTrue(c.latest().orElseThrow().endsWith("step-00000002"));
        assertFalse(Files.list(run.resolve("checkpoints")).anyMatch(f -> f.getFileName().toString().contains(".tmp-")), "the next save cleaned up");
    }
}
