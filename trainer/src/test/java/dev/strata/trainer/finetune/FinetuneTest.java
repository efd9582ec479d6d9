package dev.strata.trainer.finetune;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.strata.checkpoints.HfDirectory;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.checkpoints.Safetensors;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.trainer.cli.Main;
import dev.strata.trainer.hf.HfModels;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import dev.strata.trainer.train.Evaluation;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code strata finetune} end to end on the CPU in f64: a tiny Llama in a Hugging Face directory with a real
 * byte-level BPE tokenizer, prompt/completion and chat data; the output loads back as the model that trained, the
 * adapter folds into the same weights, an interrupted run resumes bit for bit, and bad inputs get one line.
 */
class FinetuneTest {
    @TempDir static Path dir;
    static Path base, data, eval;

    @BeforeAll
    static void fixtures() throws Exception {
        var cfg = new ModelConfig(ModelConfig.Family.LLAMA, 272, 32, 2, 4, 2, 8, 64, 96, 1e-5, 10000, false, false, false);
        Transformer model = new Transformer(cfg, CpuBackend.INSTANCE, DType.F64);
        Initializer.initialize(model, 7);
        base = dir.resolve("base");
        HfModels.save(model, null, base, DType.F64, 1L << 30);
        for (String f : List.of("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"))
            try (var in = FinetuneTest.class.getResourceAsStream(f)) {
                Files.copy(in, base.resolve(f));
            }
        String[] words = {"the", "king", "sea", "rose", "night", "crown", "storm", "light"};
        List<String> train = new ArrayList<>(), held = new ArrayList<>();
        for (int i = 0; i < 72; i++) { // 40 held out: more than eval.batches' default of 8 batches of 4
            String a = words[i % 8], b = words[(i * 3 + 1) % 8];
            String line = "{\"prompt\": \"Say " + a + " then " + b + ":\", \"completion\": \" " + a + " " + b + " " + a + "\"}";
            (i % 9 < 5 ? held : train).add(line);
        }
        data = Files.write(dir.resolve("train.jsonl"), train);
        eval = Files.write(dir.resolve("eval.jsonl"), held);
    }

    private static String[] args(Path out, String... more) {
        List<String> a = new ArrayList<>(List.of("finetune", "--model", base.toString(), "--data", data.toString(), "--eval", eval.toString(),
                "--out", out.toString(), "--backend", "cpu", "--set", "dtype=f64", "--batch", "4", "--accum", "2", "--seq-len", "32", "--lr", "2e-2"));
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    /** Runs the command; returns its exit code, standard output and error. */
    private static String[] run(String... args) {
        PrintStream stdout = System.out;
        var out = new ByteArrayOutputStream();
        var err = new StringWriter();
        var cl = Main.commandLine();
        cl.setErr(new PrintWriter(err, true));
        System.setOut(new PrintStream(out));
        try {
            return new String[] {String.valueOf(cl.execute(args)), out.toString(), err.toString()};
        } finally {
            System.setOut(stdout);
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> json(Path f) throws Exception { return new ObjectMapper().readValue(f.toFile(), Map.class); }

    @Test
    void aLoraFineTuneWritesAModelThatComputesWhatTrained() throws Exception {
        Path out = dir.resolve("lora");
        String[] r = run(args(out, "--epochs", "4", "--no-packing", "--set", "lora.targets=[attention, feed_forward, output]")); // the random base's head must move too
        assertEquals("0", r[0], r[1] + r[2]);
        assertTrue(r[1].contains("data: " + data + ": 32 prompt/completion examples"), r[1]);
        assertTrue(r[1].contains("steps on 40 examples"), r[1]);
        assertTrue(r[1].contains("steps: 16 (4.00 epochs), batch 4 x 2 accum = 8 examples a step"), r[1]);
        for (String f : List.of("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "training_summary.json"))
            assertTrue(Files.isRegularFile(out.resolve(f)), f + " missing from " + out);
        assertTrue(Files.isDirectory(out.resolve("strata-run/checkpoints/step-00000004")), "a checkpoint at the end of epoch 1");
        Map<String, Object> summary = json(out.resolve("training_summary.json"));
        List<Map<String, Object>> losses = (List<Map<String, Object>>) summary.get("train_losses");
        assertEquals(16, losses.size());
        double first = ((Number) losses.get(0).get("loss")).doubleValue(), last = ((Number) losses.get(15).get("loss")).doubleValue();
        assertTrue(last < 0.7 * first, "the completions are learnt: loss " + first + " -> " + last);

        // the merged directory, loaded as any Hugging Face model, computes the trained model's eval loss
        var loaded = HfModels.load(out, CpuBackend.INSTANCE, DType.F64);
        FinetuneData held = FinetuneData.read(dev.strata.config.JobConfig.parse(
                "model.init_from = \"" + base + "\"\nfinetune.data = \"" + eval + "\"\ntraining.seq_len = 32", "test"), 4);
        double merged = Evaluation.loss(loaded.model(), held.train(), 4, 32, 10); // every one of the 40
        double trained = ((Number) summary.get("final_eval_loss")).doubleValue();
        assertEquals(trained, merged, 1e-9 * trained, "merged weights compute the adapted model's eval loss");
        assertFalse(Files.exists(out.resolve("adapter_model.safetensors")));
    }

    @Test
    void theAdapterIsPeftsLayoutAndFoldsIntoTheMergedWeights() throws Exception {
        Path merged = dir.resolve("m"), adapter = dir.resolve("a");
        assertEquals("0", run(args(merged, "--steps", "3"))[0]);
        String[] r = run(args(adapter, "--steps", "3", "--save-adapter"));
        assertEquals("0", r[0], r[1] + r[2]);
        Map<String, Object> cfg = json(adapter.resolve("adapter_config.json"));
        assertEquals("LORA", cfg.get("peft_type"));
        assertEquals(16, cfg.get("r"));
        assertEquals(List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"), cfg.get("target_modules"));
        Map<String, HostTensor> ad = Safetensors.read(new LocalStorage(), adapter.resolve("adapter_model.safetensors").toString()).tensors();
        assertEquals(2 * 7 * 2, ad.size());
        HostTensor a = ad.get("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"), b = ad.get("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
        assertArrayEquals(new int[] {16, 64}, a.shape());
        assertArrayEquals(new int[] {32, 16}, b.shape());
        double[] w0 = HfDirectory.read(base).tensor("model.layers.1.mlp.down_proj.weight").toDoubles();
        double[] w = HfDirectory.read(merged).tensor("model.layers.1.mlp.down_proj.weight").toDoubles();
        double[] av = a.toDoubles(), bv = b.toDoubles();
        double scale = ((Number) cfg.get("lora_alpha")).doubleValue() / 16, worst = 0;
        for (int o = 0; o < 32; o++)
            for (int i = 0; i < 64; i++) {
                double folded = w0[o * 64 + i];
                for (int k = 0; k < 16; k++) folded += scale * bv[o * 16 + k] * av[k * 64 + i];
                worst = Math.max(worst, Math.abs(folded - w[o * 64 + i]));
            }
        assertTrue(worst < 1e-12, "base + (alpha/r)·B·A equals the merged weight, worst " + worst);
        assertTrue(Math.abs(bv[0]) + Math.abs(bv[1]) > 0, "B trained away from zero");
    }

    @Test
    void overwriteReplacesWhatAFineTuneWroteAndNothingElse() throws Exception {
        Path out = dir.resolve("again");
        assertEquals("0", run(args(out, "--steps", "1", "--save-adapter"))[0]);
        assertTrue(Files.isRegularFile(out.resolve("adapter_model.safetensors")));
        assertEquals("2", run(args(out, "--steps", "1"))[0], "an existing output is refused without --overwrite");
        String[] r = run(args(out, "--steps", "1", "--overwrite"));
        assertEquals("0", r[0], r[1] + r[2]);
        assertFalse(Files.exists(out.resolve("adapter_model.safetensors")), "the first fine-tune's adapter went");
        assertTrue(Files.isRegularFile(out.resolve("model.safetensors")), "the second one's merged weights are there");
        Files.writeString(out.resolve("notes.txt"), "mine");
        r = run(args(out, "--steps", "1", "--overwrite"));
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("holds notes.txt, which no fine-tune wrote there"), r[2]);
        assertTrue(Files.isRegularFile(out.resolve("model.safetensors")) && Files.isRegularFile(out.resolve("notes.txt")), "nothing removed on refusal");
    }

    @Test
    void anInterruptedFullFineTuneResumesBitForBit() throws Exception {
        Path whole = dir.resolve("whole"), cut = dir.resolve("cut");
        assertEquals("0", run(args(whole, "--full", "--steps", "6"))[0]);
        String[] first = run(args(cut, "--full", "--steps", "6", "--exit-after", "3"));
        assertTrue(first[1].contains("stopped at step 3 of 6"), first[1] + first[2]);
        assertFalse(Files.exists(cut.resolve("model.safetensors")));
        String[] second = run(args(cut, "--full", "--steps", "6", "--resume"));
        assertEquals("0", second[0], second[1] + second[2]);
        assertTrue(second[1].contains("resuming from"), second[1]);
        Map<String, HostTensor> a = HfDirectory.read(whole).tensors(), b = HfDirectory.read(cut).tensors();
        assertEquals(a.keySet(), b.keySet());
        for (String name : a.keySet()) assertArrayEquals(a.get(name).toDoubles(), b.get(name).toDoubles(), 0, name);
        String[] again = run(args(cut, "--full", "--steps", "6", "--resume"));
        assertEquals("2", again[0]);
        assertTrue(again[2].contains("finished at step 6 of 6; raise --epochs or --steps"), again[2]);
    }

    @Test
    void chatDataTrainsPackedThroughTheModelsTemplateWithFp8Adapters() throws Exception {
        List<String> chat = new ArrayList<>();
        for (int i = 0; i < 12; i++)
            chat.add("{\"messages\": [{\"role\": \"user\", \"content\": \"name " + i + "\"}, {\"role\": \"assistant\", \"content\": \"crown " + i + "\"}]}");
        Path file = Files.write(dir.resolve("chat.jsonl"), chat), out = dir.resolve("chat");
        String[] r = run("finetune", "--model", base.toString(), "--data", file.toString(), "--out", out.toString(), "--backend", "cpu",
                "--batch", "4", "--accum", "1", "--seq-len", "96", "--steps", "2", "--fp8", "--set", "precision.hadamard_block=8");
        assertEquals("0", r[0], r[1] + r[2]);
        assertTrue(r[1].contains("12 chat examples"), r[1]);
        assertTrue(r[1].contains("data: packed 12 examples"), "examples under half a row are packed by default: " + r[1]);
        assertTrue(r[1].contains("packed rows a step"), r[1]);
        assertTrue(r[1].contains("FP8 linears"), r[1]);
    }

    @Test
    void badInputsGetOneLineAndWriteNothing() throws Exception {
        Path mamba = dir.resolve("mamba");
        Files.createDirectories(mamba);
        Files.writeString(mamba.resolve("config.json"), "{\"model_type\": \"mamba\", \"vocab_size\": 272}");
        Path noTemplate = dir.resolve("no-template");
        new LocalStorage();
        Files.createDirectories(noTemplate);
        try (var files = Files.list(base)) {
            for (Path f : files.toList()) if (!f.getFileName().toString().equals("chat_template.jinja")) Files.copy(f, noTemplate.resolve(f.getFileName()));
        }
        Path chat = Files.write(dir.resolve("chat1.jsonl"), List.of("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}"));
        Path empty = Files.write(dir.resolve("empty.jsonl"), List.of());
        Path existing = dir.resolve("existing");
        Files.createDirectories(existing);
        Files.writeString(existing.resolve("notes.txt"), "mine");
        String[][] cases = {
                {"finetune", "--model", mamba.toString(), "--data", data.toString(), "--out", dir.resolve("x1").toString(), "--backend", "cpu",
                        "model_type 'mamba' is not supported (expected llama or gpt2)"},
                {"finetune", "--model", noTemplate.toString(), "--data", chat.toString(), "--out", dir.resolve("x2").toString(), "--backend", "cpu",
                        "has no chat template"},
                {"finetune", "--model", base.toString(), "--data", empty.toString(), "--out", dir.resolve("x3").toString(), "--backend", "cpu", "empty"},
                {"finetune", "--model", base.toString(), "--data", data.toString(), "--out", existing.toString(), "--backend", "cpu", "already exists"},
                {"finetune", "--model", base.toString(), "--data", data.toString(), "--out", existing.toString(), "--backend", "cpu", "--overwrite",
                        "holds notes.txt, which no fine-tune wrote there"},
                {"finetune", "--model", base.toString(), "--data", data.toString(), "--out", dir.resolve("x4").toString(), "--backend", "cpu", "--seq-len", "8",
                        "--too-long", "drop", "no example is left to train on (32 examples longer than 8 tokens left out)"},
                {"finetune", "--model", base.toString(), "--data", data.toString(), "--out", dir.resolve("x5").toString(), "--full", "--save-adapter", "--save-adapter needs LoRA"},
        };
        List<String> failures = new ArrayList<>();
        for (String[] c : cases) {
            String[] r = run(java.util.Arrays.copyOf(c, c.length - 1));
            List<String> lines = r[2].lines().toList();
            if (!r[0].equals("2") || lines.size() != 1 || !lines.get(0).contains(c[c.length - 1]) || lines.get(0).contains("Exception"))
                failures.add(String.join(" ", c) + "\n    rc " + r[0] + ", got: " + r[2]);
        }
        assertTrue(failures.isEmpty(), String.join("\n", failures));
        for (String x : List.of("x1", "x2", "x3", "x4", "x5")) assertFalse(Files.exists(dir.resolve(x)), x + " written although refused");
        assertEquals(List.of("notes.txt"), Files.list(existing).map(p -> p.getFileName().toString()).toList(), "the user's file alone, untouched");
    }
}
