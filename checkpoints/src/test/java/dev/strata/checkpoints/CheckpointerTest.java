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
        Checkpointer c = Checkpointer.ofRun(fs, run.toString(), 2);
        for (int step = 1; step <= 4; step++) c.save(step, tensors(step, 16), tensors(-step, 16), state(step));
        assertEquals(List.of(run.resolve("checkpoints/step-00000003").toString(), run.resolve("checkpoints/step-00000004").toString()), c.list());
        String latest = c.latest().orElseThrow();
        assertTrue(latest.endsWith("step-00000004"));
        var loaded = Checkpointer.load(fs, latest);
        assertEquals(4, loaded.manifest().step());
        assertArrayEquals(tensors(4, 16).get("w").toDoubles(), loaded.model().get("w").toDoubles());
        assertArrayEquals(tensors(-4, 16).get("w").toDoubles(), loaded.optimizer().get("w").toDoubles());
        assertEquals(64, loaded.manifest().tensors().get(0).shards().get(0).sha256().length());
    }

    @Test
    void aCorruptTensorIsRefusedNamingTheFile(@TempDir Path run) throws Exception {
        Checkpointer c = Checkpointer.ofRun(fs, run.toString(), 3);
        String dir = c.save(1, tensors(1, 64), tensors(2, 64), state(1));
        Path model = Path.of(dir, "model-00000.safetensors");
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

        Checkpointer c = Checkpointer.ofRun(fs, run.toString(), 3);
        assertTrue(c.latest().orElseThrow().endsWith("step-00000001"), "latest still points at step 1");
        assertFalse(Files.exists(run.resolve("checkpoints/step-00000002")), "no half-written step 2 visible");
        assertTrue(Files.list(run.resolve("checkpoints")).anyMatch(f -> f.getFileName().toString().endsWith(".partial")), "the killed save's partial directory exists");
        assertEquals(1, Checkpointer.load(fs, c.latest().orElseThrow()).manifest().step());
        c.save(2, tensors(2, 1 << 16), tensors(3, 1 << 16), state(2));
        assertTrue(c.latest().orElseThrow().endsWith("step-00000002"));
        assertFalse(Files.list(run.resolve("checkpoints")).anyMatch(f -> f.getFileName().toString().endsWith(".partial")), "the next save cleaned up");
    }

    /** A tensor of (6, 4) in f64, element (i, j) = 10 i + j + seed. */
    static HostTensor matrix(double seed) {
        double[] v = new double[24];
        for (int i = 0; i < 24; i++) v[i] = 10 * (i / 4) + i % 4 + seed;
        return HostTensor.ofDoubles(v, DType.F64, 6, 4);
    }

    static HostTensor rows(HostTensor m, int from, int count) {
        double[] all = m.toDoubles(), part = java.util.Arrays.copyOfRange(all, from * 4, (from + count) * 4);
        return HostTensor.ofDoubles(part, DType.F64, count, 4);
    }

    static HostTensor columns(HostTensor m, int from, int count) {
        double[] all = m.toDoubles(), part = new double[6 * count];
        for (int i = 0; i < 6; i++) System.arraycopy(all, i * 4 + from, part, i * count, count);
        return HostTensor.ofDoubles(part, DType.F64, 6, count);
    }

    /**
     * Three ranks write their slices at once (a tensor in row slices of 2, one in column slices of uneven widths, one
     * whole from rank 0 only); rank 0 commits once all have listed theirs. Any slice along either dimension reads back
     * from the shards it spans, past-the-end rows as zeros; the whole tensors equal what was split.
     */
    @Test
    void ranksWriteTheirSlicesAndAnySliceReadsBack(@TempDir Path run) throws Exception {
        Checkpointer c = Checkpointer.ofRun(fs, run.toString(), 2);
        HostTensor a = matrix(0.5), b = matrix(100.25);
        int[] colStart = {0, 1, 3}, colWidth = {1, 2, 1};
        List<java.util.concurrent.CompletableFuture<String>> ranks = new java.util.ArrayList<>();
        var threads = java.util.concurrent.Executors.newFixedThreadPool(3);
        for (int r = 0; r < 3; r++) {
            int rank = r;
            ranks.add(java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                List<Checkpointer.Piece> mine = new java.util.ArrayList<>();
                mine.add(new Checkpointer.Piece("a", Manifest.Group.MODEL, a.shape(), 0, 2 * rank, rows(a, 2 * rank, 2)));
                mine.add(new Checkpointer.Piece("b", Manifest.Group.OPTIMIZER, b.shape(), 1, colStart[rank], columns(b, colStart[rank], colWidth[rank])));
                if (rank == 0) mine.add(Checkpointer.Piece.whole("step", Manifest.Group.OPTIMIZER, HostTensor.ofDoubles(new double[] {7}, DType.I64, 1)));
                try {
                    if (rank > 0) Thread.sleep(100L * rank); // rank 0 waits for the others' lists
                    return c.save(7, rank, 3, mine, rank == 0 ? state(7) : null, java.time.Duration.ofSeconds(20));
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            }, threads));
        }
        String dir = ranks.get(0).get();
        threads.shutdown();
        assertEquals(null, ranks.get(1).get());
        assertEquals(dir, c.latest().orElseThrow());
        var whole = Checkpointer.load(fs, dir);
        assertArrayEquals(a.toDoubles(), whole.model().get("a").toDoubles());
        assertArrayEquals(b.toDoubles(), whole.optimizer().get("b").toDoubles());
        assertEquals(List.of("model-00000.safetensors", "model-00001.safetensors", "model-00002.safetensors", "optimizer-00000.safetensors",
                "optimizer-00001.safetensors", "optimizer-00002.safetensors"), whole.manifest().files());

        CheckpointReader r = CheckpointReader.open(fs, dir);
        var ea = r.entry(Manifest.Group.MODEL, "a");
        assertArrayEquals(rows(a, 1, 3).toDoubles(), r.region(ea, 0, 1, 3).toDoubles(), "rows 1..3 span two shards");
        assertArrayEquals(columns(a, 2, 2).toDoubles(), r.region(ea, 1, 2, 2).toDoubles(), "columns of row-sliced shards");
        double[] past = r.region(ea, 0, 4, 3).toDoubles(); // rows 4, 5 and one past the end
        assertArrayEquals(rows(a, 4, 2).toDoubles(), java.util.Arrays.copyOf(past, 8));
        assertArrayEquals(new double[4], java.util.Arrays.copyOfRange(past, 8, 12), "past the stored rows: zeros");
        var eb = r.entry(Manifest.Group.OPTIMIZER, "b");
        assertArrayEquals(rows(b, 3, 3).toDoubles(), r.region(eb, 0, 3, 3).toDoubles(), "rows across every column shard");
    }

    /** A rank that never lists its shards: rank 0 gives up after the wait, commits nothing, and the previous checkpoint stays the latest. */
    @Test
    void aMissingRankCommitsNothing(@TempDir Path run) throws Exception {
        Checkpointer c = Checkpointer.ofRun(fs, run.toString(), 2);
        String first = c.save(1, tensors(1, 8), tensors(2, 8), state(1));
        var e = assertThrows(IllegalStateException.class, () -> c.save(2, 0, 2, List.of(Checkpointer.Piece.whole("w", Manifest.Group.MODEL,
                tensors(3, 8).get("w"))), state(2), java.time.Duration.ofMillis(300)));
        assertTrue(e.getMessage().contains("rank 1 did not list its shards") && e.getMessage().contains("nothing was committed"), e.getMessage());
        assertEquals(first, c.latest().orElseThrow());
        assertFalse(Files.exists(run.resolve("checkpoints/step-00000002")));
    }

    /** keep_every keeps milestones past keep_last; pruning never removes the newest. */
    @Test
    void milestonesOutliveKeepLast(@TempDir Path run) throws Exception {
        Checkpointer c = new Checkpointer(fs, run.resolve("ck").toString(), 2, 3);
        for (int step = 1; step <= 8; step++) c.save(step, tensors(step, 4), tensors(-step, 4), state(step));
        assertEquals(List.of("step-00000003", "step-00000006", "step-00000007", "step-00000008"),
                c.list().stream().map(d -> Path.of(d).getFileName().toString()).toList());
    }

    /** Too little free space: refused before anything is written, saying how much is needed. */
    @Test
    void aSaveThatCannotFitIsRefused(@TempDir Path run) throws Exception {
        Storage tight = new ForwardingStorage(fs) {
            @Override public long freeBytes(String path) { return 100; }
        };
        var c = Checkpointer.ofRun(tight, run.toString(), 2);
        var e = assertThrows(IllegalStateException.class, () -> c.save(1, tensors(1, 64), tensors(2, 64), state(1)));
        assertTrue(e.getMessage().contains("shards need 512 bytes") && e.getMessage().contains("has 100 bytes free"), e.getMessage());
        assertTrue(c.latest().isEmpty());
    }
}
