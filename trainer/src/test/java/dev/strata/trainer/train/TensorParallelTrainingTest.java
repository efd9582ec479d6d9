package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.config.JobConfig;
import dev.strata.runtime.HostTensor;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * tp × dp ranks train the model one process trains: the same global batch, 10 steps in F64, the same losses within
 * 1e-12 relative and, in the last checkpoint (which gathers every slice whole), the same weights and optimizer
 * moments within 1e-10, with and without sequence parallelism. Llama's 2 key/value heads are split at tp = 2 and
 * each shared by two ranks at tp = 4.
 */
class TensorParallelTrainingTest {
    @TempDir static Path data;

    @BeforeAll
    static void writeData() throws Exception { TrainerTest.writeData(data); }

    static JobConfig job(Path runDir, String family, int tp, int dp, int zero, int accum) {
        return TrainerTest.job(runDir, data, family, 10).withOverrides("""
                dtype = f64
                training { batch_size = %d, grad_accum_steps = %d }
                parallel { tp = %d, dp = %d, zero = %d, bucket_mb = 0.02, launcher = threads, timeout = 60s }
                eval.every = 0
                checkpoint.every = 0
                """.formatted(4 / dp, accum, tp, dp, zero));
    }

    @ParameterizedTest
    @CsvSource({"gpt2, 2, 1, 0, 2, false", "llama, 2, 1, 0, 1, false", "llama, 4, 1, 0, 2, false", "gpt2, 2, 2, 1, 1, false", "llama, 2, 2, 2, 2, false",
            "gpt2, 2, 1, 0, 1, true", "llama, 4, 1, 0, 2, true", "gpt2, 2, 2, 1, 2, true", "llama, 2, 2, 2, 1, true"})
    void tensorParallelRanksEqualOneProcess(String family, int tp, int dp, int zero, int accum, boolean sp, @TempDir Path runs) throws Exception {
        String layout = String.format("%s tp=%d dp=%d zero=%d accum=%d%s", family, tp, dp, zero, accum, sp ? " sequence-parallel" : "");
        var one = new Trainer(job(runs.resolve("one"), family, 1, 1, 0, accum), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        var split = new Trainer(job(runs.resolve("split"), family, tp, dp, zero, accum).withOverrides("parallel.sequence_parallel = " + sp),
                TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        assertSameRun(runs.resolve("one"), one, runs.resolve("split"), split, layout);
    }

    /** Losses within 1e-12 relative; every tensor of the last checkpoints within 1e-10 relative; it trains. */
    static void assertSameRun(Path oneDir, Trainer.Result one, Path otherDir, Trainer.Result other, String layout) throws Exception {
        List<Double> a = TrainerTest.losses(oneDir), b = TrainerTest.losses(otherDir);
        assertEquals(10, a.size(), layout);
        assertEquals(a.size(), b.size(), layout);
        double worstLoss = 0;
        for (int i = 0; i < a.size(); i++) worstLoss = Math.max(worstLoss, Math.abs(a.get(i) - b.get(i)) / Math.abs(a.get(i)));
        var x = Checkpointer.load(new LocalStorage(), one.checkpoint()); 
        var y = Checkpointer.load(new LocalStorage(), other.checkpoint());
        double worstWeight = Math.max(worst(x.model(), y.model(), layout), worst(x.optimizer(), y.optimizer(), layout));
        System.out.printf("%s: worst loss difference %.2e, worst checkpoint tensor difference %.2e%n", layout, worstLoss, worstWeight);
        assertTrue(worstLoss < 1e-12, layout + " losses: " + a + " vs " + b);
        assertTrue(worstWeight < 1e-10, layout + ": checkpoint tensors differ by " + worstWeight);
        assertTrue(a.get(9) < a.get(0), "it trains: " + a);
    }

    private static double worst(Map<String, HostTensor> a, Map<String, HostTensor> b, String layout) {
        assertEquals(a.keySet(), b.keySet(), layout);
        double worst = 0;
        for (var e : a.entrySet()) {
            double[] x = e.getValue().toDoubles(), y = b.get(e.getKey()).toDoubles();
            assertEquals(x.length, y.length, e.getKey());
            for (int i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]) / Math.max(1e-3, Math.abs(x[i])));
        }
        return worst;
    }

    /** Worker processes (Pekko between them) at tp = 2 × dp = 2 train as threads do, and as one process does. */
    @Test
    void workerProcessesEqualOneProcess(@TempDir Path runs) throws Exception {
        var one = new Trainer(job(runs.resolve("one"), "llama", 1, 1, 0, 1), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        var out = new java.io.ByteArrayOutputStream();
        var procs = new Trainer(job(runs.resolve("procs"), "llama", 2, 2, 1, 1).withOverrides("parallel.launcher = processes"),
                new java.io.PrintStream(out, true)).run(RunDirectory.Mode.FRESH, 0);
        assertTrue(out.toString().contains("4 ranks (processes), tensor-parallel over 2"), "rank 0's output: " + out);
        for (int r = 0; r < 4; r++) assertTrue(java.nio.file.Files.exists(runs.resolve("procs/logs/rank-" + r + ".log")), "rank " + r + "'s log");
        assertSameRun(runs.resolve("one"), one, runs.resolve("procs"), procs, "llama tp=2 dp=2 zero=1 in processes");
    }

    /**
     * LoRA fine-tuning from a checkpoint at tp = 2 and 4 (the value heads then shared) equals tp = 1: over a
     * column-parallel layer B splits with it and A's gradient is summed over tp; over a row-parallel one A splits and
     * x·Aᵀ is summed before B.
     */
    @Test
    void loraOverColumnParallelLayersEqualsOneProcess(@TempDir Path runs) throws Exception {
        new Trainer(job(runs.resolve("pre"), "llama", 1, 1, 0, 1).withOverrides("training.steps = 4\ncheckpoint.every = 4"), TrainerTest.quiet())
                .run(RunDirectory.Mode.FRESH, 0);
        String lora = "model.init_from = \"" + runs.resolve("pre") + "\"\ntraining.lr = 3e-2\nlora { rank = 4, alpha = 8, targets = [\"attention.wq\", \"attention.wv\", \"attention.wo\", \"feed_forward.w1\", \"feed_forward.w2\", \"output\"] }";
        var one = new Trainer(job(runs.resolve("one"), "llama", 1, 1, 0, 1).withOverrides(lora), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        for (int tp : new int[] {2, 4}) {
            Path dir = runs.resolve("tp" + tp);
            var split = new Trainer(job(dir, "llama", tp, 1, 0, 1).withOverrides(lora), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
            assertSameRun(runs.resolve("one"), one, dir, split, "LoRA at tp=" + tp);
        }
    }

    /** A tp = 2 checkpoint holds whole tensors: the run resumes at tp = 1 (and the other way) and goes on as the single run does. */
    @Test
    void aCheckpointResumesAtAnotherTp(@TempDir Path runs) throws Exception {
        var straight = new Trainer(job(runs.resolve("one"), "llama", 1, 1, 0, 1).withOverrides("training.steps = 12"), TrainerTest.quiet())
                .run(RunDirectory.Mode.FRESH, 0);
        Path moved = runs.resolve("moved");
        assertEquals(6, new Trainer(job(moved, "llama", 2, 1, 0, 1).withOverrides("training.steps = 12"), TrainerTest.quiet())
                .run(RunDirectory.Mode.FRESH, 6).step());
        assertEquals(9, new Trainer(job(moved, "llama", 1, 1, 0, 1).withOverrides("training.steps = 12"), TrainerTest.quiet())
                .run(RunDirectory.Mode.RESUME, 9, true).step());
        var end = new Trainer(job(moved, "llama", 4, 1, 0, 1).withOverrides("training.steps = 12"), TrainerTest.quiet())
                .run(RunDirectory.Mode.RESUME, 0, true);
        assertEquals(12, end.step());
        List<Double> a = TrainerTest.losses(runs.resolve("one")), b = TrainerTest.losses(moved);
        assertEquals(a.size(), b.size());
        for (int i = 0; i < a.size(); i++) assertEquals(a.get(i), b.get(i), 1e-12 * Math.abs(a.get(i)), "step " + (i + 1));
        assertTrue(worst(Checkpointer.load(new LocalStorage(), straight.checkpoint()).model(),
                Checkpointer.load(new LocalStorage(), end.checkpoint()).model(), "moved") < 1e-10);
    }
}
