package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.config.JobConfig;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Pipeline stages, alone and with tensor and data parallelism, train the model one process trains: 4 layers, the
 * same global batch in 4 micro-batches, 10 steps in F64, the same losses within 1e-12 relative and the same
 * checkpoint (collected from every stage) within 1e-10. GPT-2's tied table lives on the first and the last stage.
 */
class PipelineParallelTest {
    @TempDir static Path data;

    @BeforeAll
    static void writeData() throws Exception { TrainerTest.writeData(data); }

    static JobConfig job(Path runDir, String family, int tp, int pp, int dp, int zero, String schedule, boolean sp) {
        return job(data, runDir, family, tp, pp, dp, zero, schedule, sp);
    }

    /** 4 layers in F64, the global batch in 4 micro-batches, on the data in data. */
    static JobConfig job(Path data, Path runDir, String family, int tp, int pp, int dp, int zero, String schedule, boolean sp) {
        return TrainerTest.job(runDir, data, family, 10).withOverrides("""
                dtype = f64
                model.n_layers = 4
                training { batch_size = %d, grad_accum_steps = 4 }
                parallel { tp = %d, pp = %d, dp = %d, zero = %d, schedule = %s, virtual_stages = %d, sequence_parallel = %s, bucket_mb = 0.02,
                           launcher = threads, timeout = 60s }
                eval { every = 5, batches = 2 }
                checkpoint.every = 0
                """.formatted(4 / dp, tp, pp, dp, zero, schedule, schedule.equals("interleaved") ? 2 : 1, sp));
    }

    /**
     * Every tp, pp, dp ∈ {1, 2} layout with pp = 2 under 1F1B, GPipe, interleaved (2 chunks a stage: layers 0 and 2
     * on stage 0, 1 and 3 on stage 1), zero-bubble, pp = 4, sequence parallelism, ZeRO-1.
     */
    @ParameterizedTest
    @CsvSource({
            "gpt2, 1, 2, 1, 0, 1f1b, false", "llama, 1, 2, 1, 0, 1f1b, false", "gpt2, 1, 2, 1, 0, gpipe, false",
            "llama, 2, 2, 1, 0, 1f1b, false", "gpt2, 1, 2, 2, 0, 1f1b, false", "llama, 2, 2, 2, 0, 1f1b, false",
            "llama, 1, 4, 1, 0, 1f1b, false", "gpt2, 1, 4, 1, 0, gpipe, false", "llama, 2, 2, 1, 0, 1f1b, true",
            "llama, 1, 2, 2, 1, 1f1b, false", "gpt2, 1, 2, 2, 1, 1f1b, false", "gpt2, 2, 2, 2, 2, gpipe, false",
            "gpt2, 1, 2, 1, 0, zero_bubble, false", "llama, 2, 2, 2, 1, zero_bubble, false", "llama, 1, 4, 1, 0, zero_bubble, false",
            "gpt2, 1, 2, 1, 0, interleaved, false", "llama, 2, 2, 2, 1, interleaved, false", "gpt2, 1, 2, 2, 0, interleaved, false"})
    void pipelineStagesEqualOneProcess(String family, int tp, int pp, int dp, int zero, String schedule, boolean sp, @TempDir Path runs)
            throws Exception {
        String layout = String.format("%s tp=%d pp=%d dp=%d zero=%d %s%s", family, tp, pp, dp, zero, schedule, sp ? " sp" : "");
        var one = new Trainer(job(runs.resolve("one"), family, 1, 1, 1, 0, "1f1b", false), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        var out = new java.io.ByteArrayOutputStream();
        var split = new Trainer(job(runs.resolve("split"), family, tp, pp, dp, zero, schedule, sp), new java.io.PrintStream(out, true))
                .run(RunDirectory.Mode.FRESH, 0);
        TensorParallelTrainingTest.assertSameRun(runs.resolve("one"), one, runs.resolve("split"), split, layout);
        assertEquals(one.valLoss(), split.valLoss(), 1e-12 * one.valLoss(), layout + " validation loss");
        String printed = out.toString();
        boolean interleaved = schedule.equals("interleaved");
        assertTrue(printed.contains("pipeline: " + pp + " stages, stage 0 holds layers [0, " + (interleaved ? "1) and [2, 3) and the embedding" : "")),
                printed);
        // stage 0 of an interleaved 2 x 2: 4 chunk passes of warm-up, then one more before the first backward
        int inFlight = schedule.equals("gpipe") ? 4 : interleaved ? 5 : Math.min(pp, 4);
        assertTrue(printed.contains("at most " + inFlight + (interleaved ? " chunk passes" : " micro-batches") + " in flight"), layout + ": " + printed);
    }

    /**
     * Activation checkpointing per micro-batch and chunk: recomputing every block (full) or every second (selective)
     * in backward, with several micro-batches in flight, trains as one process without it does.
     */
    @ParameterizedTest
    @CsvSource({"llama, 2, 2, 2, 1, interleaved, full", "gpt2, 1, 2, 2, 1, 1f1b, selective", "llama, 1, 2, 1, 0, zero_bubble, full"})
    void activationCheckpointingInEveryMicroBatch(String family, int tp, int pp, int dp, int zero, String schedule, String checkpointing,
                                                  @TempDir Path runs) throws Exception {
        var one = new Trainer(job(runs.resolve("one"), family, 1, 1, 1, 0, "1f1b", false), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        var split = new Trainer(job(runs.resolve("split"), family, tp, pp, dp, zero, schedule, false)
                .withOverrides("training.activation_checkpointing = " + checkpointing), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        TensorParallelTrainingTest.assertSameRun(runs.resolve("one"), one, runs.resolve("split"), split,
                String.format("%s tp=%d pp=%d dp=%d zero=%d %s, checkpointing %s", family, tp, pp, dp, zero, schedule, checkpointing));
    }

    /** tp = 2 × pp = 2 as four worker processes (Pekko between them) trains as one process does; set from the command line. */
    @Test
    void workerProcessesEqualOneProcess(@TempDir Path runs) throws Exception {
        var one = new Trainer(job(runs.resolve("one"), "llama", 1, 1, 1, 0, "1f1b", false), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        Path conf = runs.resolve("job.conf");
        java.nio.file.Files.writeString(conf, job(runs.resolve("procs"), "llama", 1, 1, 1, 0, "1f1b", false).toJson());
        var out = new java.io.ByteArrayOutputStream();
        var err = new java.io.ByteArrayOutputStream();
        var cli = dev.strata.trainer.cli.Main.commandLine();
        cli.setOut(new java.io.PrintWriter(out, true));
        cli.setErr(new java.io.PrintWriter(err, true));
        java.io.PrintStream console = System.out;
        java.io.ByteArrayOutputStream printed = new java.io.ByteArrayOutputStream();
        System.setOut(new java.io.PrintStream(printed, true));
        int rc;
        try {
            rc = cli.execute("train", conf.toString(), "--set", "parallel.tp=2", "--set", "parallel.pp=2", "--set", "parallel.dp=1",
                    "--set", "parallel.schedule=1f1b", "--set", "parallel.launcher=processes");
        } finally {
            System.setOut(console);
        }
        assertEquals(0, rc, printed + "\n" + err);
        assertTrue(printed.toString().contains("4 ranks (processes), tensor-parallel over 2"), printed.toString());
        for (int r = 0; r < 4; r++) assertTrue(java.nio.file.Files.exists(runs.resolve("procs/logs/rank-" + r + ".log")), "rank " + r + "'s log");
        var latest = dev.strata.checkpoints.Checkpointer.ofRun(new dev.strata.checkpoints.LocalStorage(), runs.resolve("procs").toString(), 1).latest();
        var procs = new Trainer.Result(10, Double.NaN, Double.NaN, 0, 0, latest.orElseThrow(), null);
        TensorParallelTrainingTest.assertSameRun(runs.resolve("one"), one, runs.resolve("procs"), procs, "llama tp=2 pp=2 in processes");
    }

    /** Fine-tuning from a Hugging Face directory at tp = 2 × pp = 2: each rank loads its stage's slices, and trains as one process does. */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"gpt2", "llama"})
    void aHuggingFaceDirectoryLoadsIntoSlicesAndStages(String family, @TempDir Path runs) throws Exception {
        var pre = new Trainer(job(runs.resolve("pre"), family, 1, 1, 1, 0, "1f1b", false).withOverrides("training.steps = 3"), TrainerTest.quiet())
                .run(RunDirectory.Mode.FRESH, 0);
        Path hf = runs.resolve("hf");
        dev.strata.trainer.hf.HfModels.save(pre.model(), dev.strata.trainer.hf.HfModels.configToHf(pre.model().config()), hf,
                dev.strata.runtime.DType.F64, 1L << 30);
        String from = "model.init_from = \"" + hf + "\"";
        var one = new Trainer(job(runs.resolve("one"), family, 1, 1, 1, 0, "1f1b", false).withOverrides(from), TrainerTest.quiet())
                .run(RunDirectory.Mode.FRESH, 0);
        var split = new Trainer(job(runs.resolve("split"), family, 2, 2, 1, 0, "1f1b", false).withOverrides(from), TrainerTest.quiet())
                .run(RunDirectory.Mode.FRESH, 0);
        TensorParallelTrainingTest.assertSameRun(runs.resolve("one"), one, runs.resolve("split"), split, family + " from Hugging Face at tp=2 pp=2");
    }

    /** Stages split as parallel.pp_layers says; a split that does not add up is one line. */
    @Test
    void stagesFollowPpLayers(@TempDir Path runs) throws Exception {
        var out = new java.io.ByteArrayOutputStream();
        new Trainer(job(runs.resolve("a"), "llama", 1, 2, 1, 0, "1f1b", false).withOverrides("parallel.pp_layers = [3, 1]\ntraining.steps = 2"),
                new java.io.PrintStream(out, true)).run(RunDirectory.Mode.FRESH, 0);
        assertTrue(out.toString().contains("stage 0 holds layers [0, 3) and the embedding"), out.toString());
        var e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> new Trainer(
                job(runs.resolve("b"), "llama", 1, 2, 1, 0, "1f1b", false).withOverrides("parallel.pp_layers = [3, 3]"), TrainerTest.quiet())
                .run(RunDirectory.Mode.FRESH, 0));
        assertTrue(e.getMessage().contains("adds up to 6 layers, the model has 4"), e.getMessage());
    }
}
