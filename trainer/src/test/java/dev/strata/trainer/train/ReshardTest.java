package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.config.JobConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A checkpoint written at tp 2 × pp 2 × dp 2 with ZeRO-1 (each rank its own slices) resumes at (tp, pp, dp) = (1, 1,
 * 1), (1, 4, 1), (2, 1, 2) and (4, 1, 1) with ZeRO-2, each rank reading just its slices: the 5 steps after it give the
 * losses the original layout gives within 1e-10 relative, and the same weights and moments within 1e-9. Resumed in
 * its own layout, a run is bit for bit the run that never stopped. F64, 4 layers, the same global batch.
 */
class ReshardTest {
    @TempDir static Path data;

    @BeforeAll
    static void writeData() throws Exception { TrainerTest.writeData(data); }

    static JobConfig job(Path dir, String family, int tp, int pp, int dp, int zero) {
        return PipelineParallelTest.job(data, dir, family, tp, pp, dp, zero, "1f1b", false).withOverrides("checkpoint { every = 5, keep_last = 5 }");
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama", "gpt2"})
    void aCheckpointResumesAtAnyLayout(String family, @TempDir Path runs) throws Exception {
        Path straight = runs.resolve("straight"), orig = runs.resolve("orig");
        var uninterrupted = new Trainer(job(straight, family, 2, 2, 2, 1), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        assertEquals(5, new Trainer(job(orig, family, 2, 2, 2, 1), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 5).step());
        var manifest = Checkpointer.readManifest(new LocalStorage(), orig.resolve("checkpoints/step-00000005").toString());
        assertEquals(8, manifest.layout().get("ranks"));
        assertTrue(manifest.files().size() >= 8, "every rank wrote its own shards: " + manifest.files());
        int[][] layouts = {{1, 1, 1, 0}, {1, 4, 1, 0}, {2, 1, 2, 1}, {4, 1, 1, 2}};
        for (int[] l : layouts) copy(orig, runs.resolve(name(l)));

        var resumed = new Trainer(job(orig, family, 2, 2, 2, 1), TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0);
        assertEquals(TrainerTest.losses(straight), TrainerTest.losses(orig), family + ": resumed in its own layout, the losses are bit for bit");
        var a = Checkpointer.load(new LocalStorage(), uninterrupted.checkpoint());
        var b = Checkpointer.load(new LocalStorage(), resumed.checkpoint());
        for (var e : a.model().entrySet()) assertArrayEquals(e.getValue().toDoubles(), b.model().get(e.getKey()).toDoubles(), e.getKey());
        for (var e : a.optimizer().entrySet()) assertArrayEquals(e.getValue().toDoubles(), b.optimizer().get(e.getKey()).toDoubles(), e.getKey());

        List<Double> expected = TrainerTest.losses(orig).subList(5, 10);
        for (int[] l : layouts) {
            Path dir = runs.resolve(name(l));
            var r = new Trainer(job(dir, family, l[0], l[1], l[2], l[3]), TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0, true);
            List<Double> got = TrainerTest.losses(dir).subList(5, 10);
            double worst = 0;
            for (int i = 0; i < 5; i++) worst = Math.max(worst, Math.abs(got.get(i) - expected.get(i)) / Math.abs(expected.get(i)));
            System.out.printf("%s %s: worst loss difference after the reshard %.2e%n", family, name(l), worst);
            assertTrue(worst < 1e-10, family + " " + name(l) + ": " + got + " vs " + expected);
            var c = Checkpointer.load(new LocalStorage(), r.checkpoint());
            assertEquals(b.model().keySet(), c.model().keySet());
            for (var e : b.model().entrySet()) {
                double[] x = e.getValue().toDoubles(), y = c.model().get(e.getKey()).toDoubles();
                for (int i = 0; i < x.length; i++) assertEquals(x[i], y[i], 1e-9 * Math.max(1e-3, Math.abs(x[i])), name(l) + " " + e.getKey());
            }
        }
    }

    private static String name(int[] l) { return "tp" + l[0] + "-pp" + l[1] + "-dp" + l[2] + "-zero" + l[3]; }

    static void copy(Path from, Path to) throws Exception {
        try (Stream<Path> walk = Files.walk(from)) {
            for (Path p : walk.toList()) {
                Path target = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) Files.createDirectories(target);
                else Files.copy(p, target);
            }
        }
    }
}
