package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.config.JobConfig;
import dev.strata.runtime.nn.AdamW;
import dev.strata.trainer.data.TokenShard;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The training loop end to end on a tiny model and synthetic data. */
class TrainerTest {
    @TempDir static Path data;

    @BeforeAll
    static void writeData() throws Exception { writeData(data); }

    static void writeData(Path data) throws Exception {
        java.nio.file.Files.createDirectories(data);
        // A learnable sequence: token i+1 follows token i (mod 97), with some noise.
        int[] tokens = new int[6000];
        java.util.SplittableRandom rng = new java.util.SplittableRandom(1);
        for (int i = 1; i < tokens.length; i++) tokens[i] = rng.nextInt(10) == 0 ? rng.nextInt(97) : (tokens[i - 1] + 1) % 97;
        TokenShard.write(data.resolve("train-00000.bin"), tokens, 0, 5000, 128);
        TokenShard.write(data.resolve("val-00000.bin"), tokens, 5000, 6000, 128);
    }

    static JobConfig job(Path runDir, String family, int steps) { return job(runDir, data, family, steps); }

    static JobConfig job(Path runDir, Path data, String family, int steps) {
        return JobConfig.parse("""
                run_dir = "%s"
                data.dir = "%s"
                model { family = %s, vocab_size = 100, dim = 32, n_layers = 2, n_heads = 4, n_kv_heads = 2, max_seq_len = 32 }
                training { steps = %d, batch_size = 4, seq_len = 16, grad_accum_steps = 2, lr = 3e-3, min_lr = 3e-4, warmup_steps = 3 }
                eval { every = 5, batches = 2 }
                checkpoint { every = 5, keep_last = 2 }
                """.formatted(runDir, data, family, steps).replace("n_kv_heads = 2", family.equals("gpt2") ? "n_kv_heads = 0" : "n_kv_heads = 2"), "test.conf");
    }

    static List<Double> losses(Path runDir) throws Exception {
        List<Double> out = new ArrayList<>();
        ObjectMapper json = new ObjectMapper();
        for (String line : Files.readAllLines(runDir.resolve(RunDirectory.METRICS))) {
            JsonNode n = json.readTree(line);
            if (n.has("loss")) out.add(n.get("loss").asDouble());
        }
        return out;
    }

    static PrintStream quiet() { return new PrintStream(new ByteArrayOutputStream()); }

    /** FP8 (HALO, emulated on the CPU) fine-tuning from a Strata checkpoint: starts where pre-training ended, learns. */
    @Test
    void fp8FineTuneStartsFromACheckpointAndLearns(@TempDir Path runs) throws Exception {
        new Trainer(job(runs.resolve("pre"), "llama", 15), quiet()).run(RunDirectory.Mode.FRESH, 0);
        JobConfig ft = job(runs.resolve("ft"), "llama", 10).withOverrides("""
                model.init_from = "%s"
                precision { linear = fp8, rotation = all, hadamard_block = 16 }
                """.formatted(runs.resolve("pre")));
        var r = new Trainer(ft, quiet()).run(RunDirectory.Mode.FRESH, 0);
        List<Double> pre = losses(runs.resolve("pre")), fine = losses(runs.resolve("ft"));
        assertTrue(fine.get(0) < pre.get(0) - 0.5, "fine-tuning starts from the checkpoint: " + fine.get(0) + " vs " + pre.get(0) + " from scratch");
        assertTrue(r.trainLoss() < fine.get(0), "fp8 fine-tuning learns: " + fine);
    }

    /**
     * LoRA over an FP8 base, fine-tuning from a Strata checkpoint: only the adapters train, every base weight ends bit
     * for bit as the checkpoint held it, checkpoints hold the adapters and their state only, and a resumed LoRA run
     * (its base rebuilt from model.init_from) ends where a straight one does.
     */
    @Test
    void loraFineTuneTrainsOnlyTheAdaptersAndResumes(@TempDir Path runs) throws Exception {
        new Trainer(job(runs.resolve("pre"), "llama", 15), quiet()).run(RunDirectory.Mode.FRESH, 0);
        String lora = """
                model.init_from = "%s"
                precision { linear = fp8, rotation = all, hadamard_block = 16 }
                lora { rank = 4, alpha = 8, targets = ["attention", "feed_forward", "output"] }
                training { lr = 3e-2, min_lr = 3e-3 }
                """.formatted(runs.resolve("pre"));
        var r = new Trainer(job(runs.resolve("ft"), "llama", 10).withOverrides(lora), quiet()).run(RunDirectory.Mode.FRESH, 0);
        List<Double> fine = losses(runs.resolve("ft"));
        // The embedding and norms stay frozen: this tiny model learns through the LM head's adapter above all.
        assertTrue(r.trainLoss() < fine.get(0) - 0.3, "LoRA fine-tuning learns: " + fine);

        LocalStorage fs = new LocalStorage();
        var base = Checkpointer.load(fs, Checkpointer.ofRun(fs, runs.resolve("pre").toString(), 1).latest().orElseThrow());
        r.model().parameters().forEach((name, p) -> {
            double[] w = r.model().backend().toDoubles(p.value());
            if (name.contains(".lora_")) assertTrue(java.util.Arrays.stream(w).anyMatch(v -> v != 0), name + " trained");
            else { // the checkpoint holds the vocabulary's 100 real rows of the 128 the model pads it to
                double[] stored = base.model().get(name).toDoubles();
                assertArrayEquals(stored, java.util.Arrays.copyOf(w, stored.length), 0, name + " is frozen");
                assertTrue(java.util.Arrays.stream(w, stored.length, w.length).allMatch(v -> v == 0), name + ": padding rows stay zero");
            }
        });
        var tuned = Checkpointer.load(fs, r.checkpoint());
        assertEquals(2 * (2 * 7 + 1), tuned.model().size(), "the checkpoint holds A and B of 7 linears in each of 2 layers and of the LM head");
        tuned.model().keySet().forEach(name -> assertTrue(name.contains(".lora_"), "a LoRA checkpoint holds adapters only: " + name));
        assertArrayEquals(new int[] {100, 4}, tuned.model().get("output.lora_b").shape(), "the head's adapter B holds the vocabulary's real rows");
        for (String name : tuned.optimizer().keySet())
            assertTrue(name.equals("step") || name.startsWith("step_state.") || name.contains(".lora_"), "AdamW state only for adapters: " + name);
        assertTrue(tuned.optimizer().containsKey("step_state.layers.0.attention.wq.amax_history.x_rows"), "FP8 amax histories are checkpointed");

        Path split = runs.resolve("ft-split");
        new Trainer(job(split, "llama", 10).withOverrides(lora), quiet()).run(RunDirectory.Mode.FRESH, 5);
        var resumed = new Trainer(job(split, "llama", 10).withOverrides(lora), quiet()).run(RunDirectory.Mode.RESUME, 0);
        assertEquals(r.trainLoss(), resumed.trainLoss(), 0, "a resumed LoRA run ends where the straight one does");

        var e = assertThrows(IllegalArgumentException.class, () -> new Trainer(job(runs.resolve("from-adapters"), "llama", 2)
                .withOverrides("model.init_from = \"" + runs.resolve("ft") + "\""), quiet()).run(RunDirectory.Mode.FRESH, 0));
        assertTrue(e.getMessage().contains("holds LoRA adapters only"), e.getMessage());
    }

    /** Dense runs, and FP8 with delayed scaling, whose amax histories the checkpoints carry. */
    @Test
    void twentyStepsStraightEqualTenPlusResumePlusTenBitForBit(@TempDir Path runs) throws Exception {
        String fp8 = "precision { linear = fp8, rotation = all, hadamard_block = 16, scaling = delayed }";
        for (String[] run : new String[][] {{"gpt2", ""}, {"llama", ""}, {"llama", fp8}}) {
            String family = run[0], name = family + (run[1].isEmpty() ? "" : "-fp8");
            Path straight = runs.resolve(name + "-straight"), split = runs.resolve(name + "-split");
            var r = new Trainer(job(straight, family, 20).withOverrides(run[1]), quiet()).run(RunDirectory.Mode.FRESH, 0);
            assertEquals(20, r.step());
            new Trainer(job(split, family, 20).withOverrides(run[1]), quiet()).run(RunDirectory.Mode.FRESH, 10);
            assertEquals(10, losses(split).size());
            new Trainer(job(split, family, 20).withOverrides(run[1]), quiet()).run(RunDirectory.Mode.RESUME, 0);
            List<Double> a = losses(straight), b = losses(split);
            assertEquals(20, a.size());
            assertEquals(a, b, name + ": losses of the resumed run differ");
            assertTrue(a.get(19) < a.get(0) - 0.5, name + " learns: " + a);
            // the model pads its 100 tokens to 128 rows; checkpoints hold the 100 real ones, and resuming restores the padding
            var fs = new LocalStorage();
            var ckpt = Checkpointer.load(fs, Checkpointer.ofRun(fs, split.toString(), 2).latest().orElseThrow());
            List<String> tables = family.equals("gpt2") ? List.of("tok_embeddings.weight") : List.of("tok_embeddings.weight", "output.weight");
            for (String table : tables) {
                assertArrayEquals(new int[] {100, 32}, ckpt.model().get(table).shape(), table);
                assertArrayEquals(new int[] {100, 32}, ckpt.optimizer().get("exp_avg." + table).shape(), "exp_avg." + table);
            }
        }
    }

    @Test
    void aLoraTargetThatMatchesNoLayerIsNamed(@TempDir Path runs) {
        JobConfig job = job(runs.resolve("r"), "gpt2", 2).withOverrides("lora { rank = 2, targets = [\"attention\", \"output\"] }");
        var e = assertThrows(dev.strata.config.ConfigError.class, () -> new Trainer(job, quiet()).run(RunDirectory.Mode.FRESH, 0));
        assertTrue(e.getMessage().contains("test.conf: lora.targets entry \"output\" matches no linear layer") && e.getMessage().contains("tied LM head"),
                e.getMessage());
        assertTrue(!Files.exists(runs.resolve("r")), "a refused job writes no run directory, so the fixed job starts afresh");
    }

    @Test
    void runDirectoryHoldingAnotherRunIsRefused(@TempDir Path runs) throws Exception {
        Path dir = runs.resolve("r");
        new Trainer(job(dir, "gpt2", 2), quiet()).run(RunDirectory.Mode.FRESH, 0);
        var e = assertThrows(IllegalArgumentException.class, () -> new Trainer(job(dir, "gpt2", 2), quiet()).run(RunDirectory.Mode.FRESH, 0));
        assertTrue(e.getMessage().contains("--resume") && e.getMessage().contains("--overwrite"), e.getMessage());
        var other = assertThrows(IllegalArgumentException.class, () -> new Trainer(job(dir, "llama", 2), quiet()).run(RunDirectory.Mode.RESUME, 0));
        assertTrue(other.getMessage().contains("different model"), other.getMessage());
        new Trainer(job(dir, "llama", 2), quiet()).run(RunDirectory.Mode.OVERWRITE, 0);
        assertEquals(2, losses(dir).size(), "overwrite started a new metrics log");
    }

    @Test
    void checkpointsKeepTheLastNAndLatestVerifies(@TempDir Path runs) throws Exception {
        Path dir = runs.resolve("c");
        new Trainer(job(dir, "llama", 15), quiet()).run(RunDirectory.Mode.FRESH, 0);
        Checkpointer c = Checkpointer.ofRun(new LocalStorage(), dir.toString(), 2);
        assertEquals(2, c.list().size());
        var ckpt = Checkpointer.load(new LocalStorage(), c.latest().orElseThrow());
        assertEquals(15, ckpt.manifest().step());
        assertTrue(ckpt.manifest().data().containsKey("cursor"));
        assertTrue(ckpt.optimizer().containsKey("exp_avg.layers.0.attention.wq.weight"));
    }
}
