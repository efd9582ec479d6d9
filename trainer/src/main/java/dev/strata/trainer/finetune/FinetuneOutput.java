package dev.strata.trainer.finetune;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.strata.checkpoints.HfDirectory;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.checkpoints.Safetensors;
import dev.strata.config.LoraSpec;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.nn.Parameter;
import dev.strata.trainer.hf.HfModels;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * A fine-tune's output directory: a Hugging Face model transformers loads (the adapters folded into the weights),
 * or a PEFT adapter beside the base, the tokenizer's files, training_summary.json, and the run (checkpoints,
 * metrics) under strata-run/. A list of what was written is kept there, so --overwrite removes exactly that.
 */
public final class FinetuneOutput {
    public static final String RUN = "strata-run", SUMMARY = "training_summary.json", WRITTEN = ".strata-finetune.json";
    private static final String STAGING = ".model-tmp"; // the model is written here, then moved into the directory
    static final String ADAPTER = "adapter_model.safetensors", ADAPTER_CONFIG = "adapter_config.json";
    /** The tokenizer's files as transformers saves them, copied where the base has them. */
    static final List<String> TOKENIZER_FILES = List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
            "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json");
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Path dir;

    private FinetuneOutput(Path dir) { this.dir = dir; }

    /**
     * The output directory, checked before anything trains: it must not exist unless resuming (then a fine-tune's,
     * with its run) or overwriting, which removes what a fine-tune wrote there and nothing else.
     */
    public static FinetuneOutput prepare(Path dir, boolean resume, boolean overwrite) throws IOException {
        var out = new FinetuneOutput(dir);
        boolean exists = Files.exists(dir) && !(Files.isDirectory(dir) && isEmpty(dir));
        if (exists && !Files.isDirectory(dir)) throw new IllegalArgumentException("--out " + dir + " is a file, not a directory");
        Set<String> written = exists ? out.written() : Set.of();
        if (resume) {
            if (!Files.isDirectory(dir.resolve(RUN)))
                throw new IllegalArgumentException("--resume: " + dir + " holds no fine-tune run (" + RUN + "/) to continue; leave out --resume to start one");
            return out;
        }
        if (exists && !overwrite)
            throw new IllegalArgumentException("--out " + dir + " already exists; pass --overwrite to replace what a fine-tune wrote there, "
                    + "--resume to continue its run, or give a new directory");
        if (exists) {
            for (String name : outputNames(dir))
                if (!written.contains(name))
                    throw new IllegalArgumentException("--out " + dir + " holds " + name + ", which no fine-tune wrote there; "
                            + "--overwrite removes only a fine-tune's files, so move it or give a new directory");
            LocalStorage fs = new LocalStorage();
            for (String name : written) fs.delete(dir.resolve(name).toString());
            Files.deleteIfExists(dir.resolve(WRITTEN));
        }
        Files.createDirectories(dir);
        out.record(List.of(RUN));
        return out;
    }

    public Path runDir() { return dir.resolve(RUN); }

    /**
     * The trained model: merged weights in the base's dtype (adapters folded in: W + (alpha/r)·B·A), or the adapters
     * alone in PEFT's layout; then the base's tokenizer files and the summary, which is written last.
     */
    public void write(Transformer model, Map<String, Object> hfConfig, Path base, LoraSpec lora, boolean adapterOnly,
                      Map<String, Object> summary) throws IOException {
        DType stored = storedDtype(hfConfig);
        List<String> names = new ArrayList<>();
        Path staging = dir.resolve(STAGING);
        record(List.of(STAGING)); // so --overwrite also clears what an interrupted write leaves
        new LocalStorage().delete(staging.toString());
        if (adapterOnly) {
            Files.createDirectories(staging);
            writeAdapter(model, base, lora, stored, staging);
        } else {
            HfModels.save(model, hfConfig, staging, stored, HfModels.SHARD_BYTES, merged(model, lora));
        }
        for (String name : TOKENIZER_FILES)
            if (Files.isRegularFile(base.resolve(name))) Files.copy(base.resolve(name), staging.resolve(name));
        try (var files = Files.list(staging)) {
            for (Path f : files.toList()) names.add(f.getFileName().toString());
        }
        record(names); // before the move: a crash midway leaves files --overwrite knows
        for (String name : names) Files.move(staging.resolve(name), dir.resolve(name), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        Files.delete(staging);
        record(List.of(SUMMARY));
        Path tmp = dir.resolve(SUMMARY + ".tmp");
        JSON.writeValue(tmp.toFile(), summary);
        Files.move(tmp, dir.resolve(SUMMARY), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    /** Each weight's values with its adapter, if it has one, folded in. */
    static Function<Parameter, double[]> merged(Transformer model, LoraSpec lora) {
        Backend backend = model.backend();
        Map<String, Parameter> params = model.parameters();
        double scale = lora.enabled() ? lora.alpha() / lora.rank() : 0;
        return p -> {
            double[] w = backend.toDoubles(p.value());
            String layer = p.name().endsWith(".weight") ? p.name().substring(0, p.name().length() - ".weight".length()) : null;
            Parameter a = layer == null ? null : params.get(layer + ".lora_a"), b = layer == null ? null : params.get(layer + ".lora_b");
            if (a == null || b == null) return w;
            int r = a.shape()[0], in = a.shape()[1], out = b.shape()[0];
            double[] av = backend.toDoubles(a.value()), bv = backend.toDoubles(b.value());
            // in f64 on the host, a row of W at a time on every core: exact where the device's GEMM might round (TF32)
            java.util.stream.IntStream.range(0, out).parallel().forEach(o -> {
                for (int k = 0; k < r; k++) {
                    double s = scale * bv[o * r + k];
                    for (int i = 0; s != 0 && i < in; i++) w[o * in + i] += s * av[k * in + i];
                }
            });
            return w;
        };
    }

    /** adapter_model.safetensors and adapter_config.json as PEFT saves a LoRA of a causal LM. */
    private static void writeAdapter(Transformer model, Path base, LoraSpec lora, DType stored, Path into) throws IOException {
        if (model.config().family() != ModelConfig.Family.LLAMA)
            throw new IllegalArgumentException("a PEFT adapter is written for llama models; this one is " + model.config().family());
        Backend backend = model.backend();
        Map<String, Parameter> params = model.parameters();
        Map<String, HostTensor> tensors = new LinkedHashMap<>();
        Set<String> modules = new LinkedHashSet<>();
        for (HfModels.TensorMapping m : HfModels.mappings(model.config(), "")) {
            String ours = m.ours().get(0);
            if (!ours.endsWith(".weight") || !params.containsKey(ours.replace(".weight", ".lora_a"))) continue;
            String hfLayer = m.hfName().substring(0, m.hfName().length() - ".weight".length());
            for (String[] ab : new String[][] {{".lora_a", ".lora_A.weight"}, {".lora_b", ".lora_B.weight"}}) {
                Parameter p = params.get(ours.replace(".weight", ab[0]));
                tensors.put("base_model.model." + hfLayer + ab[1], HostTensor.ofDoubles(backend.toDoubles(p.value()), stored, p.shape()));
            }
            modules.add(hfLayer.substring(hfLayer.lastIndexOf('.') + 1));
        }
        try (OutputStream out = Files.newOutputStream(into.resolve(ADAPTER))) {
            Safetensors.write(out, tensors, Map.of("format", "pt"));
        }
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("peft_type", "LORA");
        config.put("task_type", "CAUSAL_LM");
        config.put("base_model_name_or_path", base.toAbsolutePath().toString());
        config.put("r", lora.rank());
        config.put("lora_alpha", lora.alpha());
        config.put("lora_dropout", 0.0);
        config.put("target_modules", List.copyOf(modules));
        config.put("bias", "none");
        config.put("fan_in_fan_out", false);
        config.put("use_rslora", false);
        config.put("inference_mode", true);
        JSON.writeValue(into.resolve(ADAPTER_CONFIG).toFile(), config);
    }

    /** The base's dtype as its config.json states it (transformers 5's "dtype", 4's "torch_dtype"); f32 when unstated. */
    static DType storedDtype(Map<String, Object> hfConfig) {
        Object d = hfConfig.getOrDefault("dtype", hfConfig.get("torch_dtype"));
        return switch (String.valueOf(d)) {
            case "bfloat16" -> DType.BF16;
            case "float16" -> DType.F16;
            case "float64" -> DType.F64;
            default -> DType.F32;
        };
    }

    /** What a fine-tune writes here could collide with: files a Hugging Face model or PEFT adapter directory holds. */
    private static List<String> outputNames(Path dir) throws IOException {
        try (var files = Files.list(dir)) {
            return files.map(f -> f.getFileName().toString()).filter(n -> !n.equals(WRITTEN)).sorted().toList();
        }
    }

    @SuppressWarnings("unchecked")
    private Set<String> written() throws IOException {
        Path f = dir.resolve(WRITTEN);
        if (!Files.isRegularFile(f)) return Set.of();
        return new LinkedHashSet<>((List<String>) JSON.readValue(f.toFile(), Map.class).get("files"));
    }

    private void record(List<String> names) throws IOException {
        Set<String> all = new LinkedHashSet<>(written());
        all.addAll(names);
        Path tmp = dir.resolve(WRITTEN + ".tmp");
        JSON.writeValue(tmp.toFile(), Map.of("files", List.copyOf(all)));
        Files.move(tmp, dir.resolve(WRITTEN), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    private static boolean isEmpty(Path dir) throws IOException {
        try (var files = Files.list(dir)) {
            return files.findAny().isEmpty();
        }
    }
}
