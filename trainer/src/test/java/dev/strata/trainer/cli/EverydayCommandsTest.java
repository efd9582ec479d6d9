package dev.strata.trainer.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.config.JobConfig;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.trainer.hf.HfModels;
import dev.strata.trainer.model.Transformer;
import dev.strata.trainer.train.RunDirectory;
import dev.strata.trainer.train.TrainedModel;
import dev.strata.trainer.train.Trainer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** export-hf, eval and generate on a run trained here, as a user calls them. */
class EverydayCommandsTest {

    static Path train(Path dir, String family) throws Exception {
        Path data = dir.resolve("data"), text = dir.resolve("in.txt");
        Files.writeString(text, "The quick brown fox jumps over the lazy dog. ".repeat(300));
        dev.strata.trainer.data.DataPrep.prepare(text, data, 0.2, 1 << 20);
        JobConfig job = JobConfig.parse("""
                run_dir = "%s"
                data.dir = "%s"
                model { family = %s, dim = 32, n_layers = 2, n_heads = 4, n_kv_heads = %d, max_seq_len = 32 }
                training { steps = 4, batch_size = 2, seq_len = 16, warmup_steps = 1 }
                eval { every = 0, batches = 2 }
                """.formatted(dir.resolve("run"), data, family, family.equals("llama") ? 2 : 0), "test.conf");
        var out = new ByteArrayOutputStream();
        new Trainer(job.withOverrides("sample { tokens = 12, prompt = \"The quick\", temperature = 0 }"), new PrintStream(out, true))
                .run(RunDirectory.Mode.FRESH, 0);
        String printed = out.toString();
        assertTrue(printed.contains("---- sample ----\nThe quick") && printed.indexOf("----------------") > printed.indexOf("The quick"),
                "the job's sample {} prints text after training: " + printed);
        return dir.resolve("run");
    }

    static String run(String... args) {
        var out = new ByteArrayOutputStream();
        PrintStream old = System.out;
        System.setOut(new PrintStream(out, true));
        try {
            int rc = Main.commandLine().execute(args);
            assertEquals(0, rc, String.join(" ", args) + " failed: " + out);
        } finally {
            System.setOut(old);
        }
        return out.toString();
    }

    static double[] logits(Transformer model, int[] ids) {
        var cpu = model.backend();
        try (Tensor x = cpu.fromInts(ids, 1, ids.length); Tensor l = model.forward(x, 1, ids.length)) {
            model.discardSaved();
            return cpu.toDoubles(l);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama"})
    void exportHfReadsBackToIdenticalLogitsThroughInitFrom(String family, @TempDir Path dir) throws Exception {
        Path run = train(dir, family), out = dir.resolve("hf");
        run("ckpt", "export-hf", run.toString(), "--out", out.toString());
        for (String f : new String[] {"config.json", "model.safetensors", "generation_config.json"})
            assertTrue(Files.exists(out.resolve(f)), f);
        int[] ids = {464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13};
        double[] trained = logits(TrainedModel.load(run, CpuBackend.INSTANCE, DType.F32).model(), ids);
        double[] exported = logits(HfModels.load(out, CpuBackend.INSTANCE, DType.F32).model(), ids);
        assertArrayEquals(trained, exported, 0.0, "the exported directory holds the checkpoint's model");
        // model.init_from reads the directory back as a fine-tune's starting point, to the same logits.
        JobConfig ft = JobConfig.parse("model.init_from = \"" + out + "\"\nrun_dir = \"" + dir.resolve("ft") + "\"\ndata.dir = \"" + dir.resolve("data") + "\"", "ft.conf");
        var r = new Trainer(ft.withOverrides("training { steps = 1, batch_size = 2, seq_len = 16, lr = 1e-12, min_lr = 0, warmup_steps = 0 }"),
                new PrintStream(new ByteArrayOutputStream())).run(RunDirectory.Mode.FRESH, 0);
        double[] fineTuned = logits(r.model(), ids);
        double worst = 0;
        for (int i = 0; i < trained.length; i++) worst = Math.max(worst, Math.abs(fineTuned[i] - trained[i]));
        assertTrue(worst < 1e-4, "one step at lr 1e-12 from init_from starts at the exported model: " + worst);
    }

    @Test
    void evalAgreesWithTheRunsValidationLossAndGeneratePrintsTokensPerSecond(@TempDir Path dir) throws Exception {
        Path run = train(dir, "gpt2");
        var last = new com.fasterxml.jackson.databind.ObjectMapper().readTree(Files.readAllLines(run.resolve(RunDirectory.METRICS)).stream()
                .filter(l -> l.contains("val_loss")).reduce((a, b) -> b).orElseThrow());
        String eval = run("eval", "--checkpoint", run.toString(), "--data", dir.resolve("data").toString(), "--batches", "2",
                "--batch-size", "2", "--backend", "cpu");
        var m = java.util.regex.Pattern.compile("loss (\\d+\\.\\d+), perplexity").matcher(eval);
        assertTrue(m.find(), eval);
        assertEquals(last.get("val_loss").asDouble(), Double.parseDouble(m.group(1)), 1e-4, eval);
        String text = run("generate", "--checkpoint", run.toString(), "--prompt", "The quick", "--tokens", "40", "--backend", "cpu", "--seed", "3");
        assertTrue(text.startsWith("The quick") && text.contains("40 tokens in") && text.contains("tokens/s"), text);
    }
}
