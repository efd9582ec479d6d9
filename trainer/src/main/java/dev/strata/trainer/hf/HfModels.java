package dev.strata.trainer.hf;

import dev.strata.runtime.nn.Parameter;
import dev.strata.checkpoints.HfDirectory;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * Loads and saves Hugging Face {@code llama} and {@code gpt2} model directories. Names and layouts differ from ours in
 * two ways only: GPT-2's Conv1D weights are stored (in,out), and its q, k, v share one {@code c_attn} tensor. Both
 * are captured by {@link TensorMapping}: HF tensor = [transpose of] the concatenation of ours along dim 0.
 */
public final class HfModels {
    private HfModels() {}

    /** One HF tensor and the parameters of ours it holds. */
    public record TensorMapping(String hfName, List<String> ours, boolean transposed) {}

    /** A model read from a directory, with the config it came with (kept for export). */
    public record Loaded(Transformer model, Map<String, Object> hfConfig, List<TensorMapping> mappings) {}

    public static Loaded load(Path dir, Backend backend, DType dtype) throws IOException {
        return load(dir, backend, dtype, cfg -> new Transformer(cfg, backend, dtype));
    }

    /**
     * As {@link #load(Path, Backend, DType)}, building the model with {@code build} (e.g. with FP8 linears, or a
     * rank's part of it: a pipeline stage's tensors only, a tensor-parallel slice of each).
     */
    public static Loaded load(Path dir, Backend backend, DType dtype, java.util.function.Function<ModelConfig, Transformer> build) throws IOException {
        HfDirectory hf = HfDirectory.read(dir);
        ModelConfig cfg = configFromHf(hf.config(), dir.resolve(HfDirectory.CONFIG).toString());
        Transformer model = build.apply(cfg);
        String prefix = cfg.family() == ModelConfig.Family.GPT2 && hf.tensors().keySet().stream().anyMatch(n -> n.startsWith("transformer."))
                ? "transformer." : "";
        List<TensorMapping> mappings = mappings(cfg, prefix);
        Map<String, Parameter> params = model.parameters();
        for (TensorMapping m : mappings) {
            long here = m.ours().stream().filter(params::containsKey).count();
            if (here == 0) continue; // another pipeline stage's
            if (here < m.ours().size()) throw new IllegalStateException(m.hfName() + " feeds " + m.ours() + ", of which this model holds only some");
            HostTensor t = hf.tensor(m.hfName());
            List<int[]> shapes = m.ours().stream().map(n -> storedShape(model, params.get(n))).toList();
            int[] expected = hfShape(shapes, m.transposed());
            if (!Arrays.equals(t.shape(), expected))
                throw new IllegalArgumentException("model directory " + dir + ": tensor '" + m.hfName() + "' has shape "
                        + Arrays.toString(t.shape()) + ", config.json implies " + Arrays.toString(expected));
            List<double[]> parts = split(t.toDoubles(), shapes, m.transposed());
            for (int i = 0; i < parts.size(); i++) {
                Parameter p = params.get(m.ours().get(i));
                int[] whole = p.placement().globalShape();
                double[] rows = Arrays.copyOf(parts.get(i), Math.toIntExact(Tensor.numel(whole))); // zero rows past V
                try (Tensor src = backend.fromDoubles(rows, p.value().dtype(), whole)) {
                    p.placement().take(src, p.value());
                }
            }
        }
        return new Loaded(model, hf.config(), mappings);
    }

    /** The model's weights (or, with {@code values} reading gradients, its gradients) under HF names. */
    public static Map<String, HostTensor> toHf(Transformer model, List<TensorMapping> mappings,
                                               Function<Parameter, double[]> values, DType stored) {
        Map<String, Parameter> params = model.parameters();
        Map<String, HostTensor> out = new LinkedHashMap<>();
        for (TensorMapping m : mappings) {
            List<int[]> shapes = new ArrayList<>();
            List<double[]> parts = new ArrayList<>();
            for (String n : m.ours()) {
                Parameter p = params.get(n);
                int[] shape = storedShape(model, p);
                shapes.add(shape);
                parts.add(Arrays.copyOf(values.apply(p), Math.toIntExact(Tensor.numel(shape))));
            }
            out.put(m.hfName(), HostTensor.ofDoubles(join(parts, shapes, m.transposed()), stored, hfShape(shapes, m.transposed())));
        }
        return out;
    }

    /** A parameter's (whole) shape in a Hugging Face directory: the vocabulary's V rows of a padded table. */
    private static int[] storedShape(Transformer model, Parameter p) {
        int[] s = p.placement().globalShape();
        s[0] = model.storedRows(p.name(), s);
        return s;
    }

    /** Shards of a saved directory hold at most this many bytes, as transformers' save_pretrained does by default. */
    public static final long SHARD_BYTES = 5_000_000_000L;

    public static void save(Transformer model, Map<String, Object> hfConfig, Path dir, DType stored, long maxShardBytes)
            throws IOException {
        // Hugging Face names have no place for LoRA adapters: saving would silently drop what the fine-tune learned.
        if (model.parameters().values().stream().anyMatch(p -> p.kind().adapter()))
            throw new IllegalArgumentException("model directory " + dir + ": the model has LoRA adapters, which a Hugging Face directory cannot hold");
        Backend backend = model.backend();
        save(model, hfConfig, dir, stored, maxShardBytes, p -> backend.toDoubles(p.value()));
    }

    /** As above, each weight's values from {@code values} (a LoRA fine-tune's: the adapters folded in). */
    public static void save(Transformer model, Map<String, Object> hfConfig, Path dir, DType stored, long maxShardBytes,
                            Function<Parameter, double[]> values) throws IOException {
        Map<String, Object> config = hfConfig != null ? new LinkedHashMap<>(hfConfig) : configToHf(model.config());
        config.put("dtype", switch (stored) {
            case F64 -> "float64";
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            default -> "float32";
        });
        String prefix = model.config().family() == ModelConfig.Family.GPT2 ? "transformer." : "";
        List<TensorMapping> mappings = mappings(model.config(), prefix);
        HfDirectory.write(dir, config, generationConfig(model.config()), toHf(model, mappings, values, stored), maxShardBytes);
    }

    /** generation_config.json: GPT-2's tokenizer (which Strata's data uses) ends text with <|endoftext|> = 50256. */
    static Map<String, Object> generationConfig(ModelConfig m) {
        Map<String, Object> g = new LinkedHashMap<>();
        if (m.vocabSize() >= 50257) {
            g.put("bos_token_id", 50256);
            g.put("eos_token_id", 50256);
        }
        g.put("transformers_version", "4.0.0");
        return g;
    }

    // ---- config.json ----------------------------------------------------------------------------------------------

    public static ModelConfig configFromHf(Map<String, Object> c, String file) {
        HfConfigReader r = new HfConfigReader(c, file);
        String type = r.string("model_type");
        return switch (type) {
            case "llama" -> {
                r.expect("hidden_act", "silu");
                r.expectAbsentOrNull("rope_scaling", "RoPE scaling is not supported yet");
                int dim = r.integer("hidden_size"), heads = r.integer("num_attention_heads");
                double theta = c.get("rope_parameters") instanceof Map<?, ?> rp && rp.get("rope_theta") instanceof Number n
                        ? n.doubleValue() : r.number("rope_theta", 10000.0);
                if (c.get("rope_parameters") instanceof Map<?, ?> rp && rp.get("rope_type") != null && !"default".equals(rp.get("rope_type")))
                    throw new IllegalArgumentException(file + ": rope_parameters.rope_type '" + rp.get("rope_type")
                            + "' is not supported (expected \"default\")");
                yield new ModelConfig(ModelConfig.Family.LLAMA, r.integer("vocab_size"), dim, r.integer("num_hidden_layers"),
                        heads, r.integer("num_key_value_heads", heads), r.integer("head_dim", dim / heads),
                        r.integer("intermediate_size"), r.integer("max_position_embeddings"), r.number("rms_norm_eps", 1e-6),
                        theta, r.bool("tie_word_embeddings", false), r.bool("attention_bias", false), r.bool("mlp_bias", false));
            }
            case "gpt2" -> {
                String act = r.string("activation_function", "gelu_new");
                if (!act.equals("gelu_new") && !act.equals("gelu_pytorch_tanh"))
                    throw new IllegalArgumentException(file + ": activation_function '" + act + "' is not supported (expected gelu_new)");
                if (r.bool("scale_attn_by_inverse_layer_idx", false))
                    throw new IllegalArgumentException(file + ": scale_attn_by_inverse_layer_idx = true is not supported");
                int dim = r.integer("n_embd"), heads = r.integer("n_head");
                Object inner = c.get("n_inner");
                yield new ModelConfig(ModelConfig.Family.GPT2, r.integer("vocab_size"), dim, r.integer("n_layer"), heads, heads,
                        dim / heads, inner == null ? 4 * dim : r.integer("n_inner"), r.integer("n_positions"),
                        r.number("layer_norm_epsilon", 1e-5), 0, r.bool("tie_word_embeddings", true), true, true);
            }
            default -> throw new IllegalArgumentException(file + ": model_type '" + type + "' is not supported (expected llama or gpt2)");
        };
    }

    public static Map<String, Object> configToHf(ModelConfig m) {
        Map<String, Object> c = new LinkedHashMap<>();
        if (m.family() == ModelConfig.Family.LLAMA) {
            c.put("architectures", List.of("LlamaForCausalLM"));
            c.put("model_type", "llama");
            c.put("vocab_size", m.vocabSize());
            c.put("hidden_size", m.dim());
            c.put("intermediate_size", m.ffnDim());
            c.put("num_hidden_layers", m.nLayers());
            c.put("num_attention_heads", m.nHeads());
            c.put("num_key_value_heads", m.nKvHeads());
            c.put("head_dim", m.headDim());
            c.put("max_position_embeddings", m.maxSeqLen());
            c.put("rms_norm_eps", m.normEps());
            c.put("rope_theta", m.ropeTheta());
            c.put("hidden_act", "silu");
            c.put("tie_word_embeddings", m.tieEmbeddings());
            c.put("attention_bias", m.attentionBias());
            c.put("mlp_bias", m.mlpBias());
        } else {
            c.put("architectures", List.of("GPT2LMHeadModel"));
            c.put("model_type", "gpt2");
            c.put("vocab_size", m.vocabSize());
            c.put("n_embd", m.dim());
            c.put("n_layer", m.nLayers());
            c.put("n_head", m.nHeads());
            c.put("n_inner", m.ffnDim());
            c.put("n_positions", m.maxSeqLen());
            c.put("layer_norm_epsilon", m.normEps());
            c.put("activation_function", "gelu_new");
            c.put("tie_word_embeddings", m.tieEmbeddings());
        }
        return c;
    }

    // ---- tensor names -------------------------------------------------------------------------------------------

    /** Every HF tensor of the model and the parameters of ours behind it; a tied head appears only as the embedding. */
    public static List<TensorMapping> mappings(ModelConfig cfg, String gpt2Prefix) {
        List<TensorMapping> ms = new ArrayList<>();
        if (cfg.family() == ModelConfig.Family.LLAMA) {
            ms.add(copy("model.embed_tokens.weight", "tok_embeddings.weight"));
            for (int i = 0; i < cfg.nLayers(); i++) {
                String hf = "model.layers." + i + ".", us = "layers." + i + ".";
                ms.add(copy(hf + "input_layernorm.weight", us + "attention_norm.weight"));
                for (String[] p : new String[][] {{"q_proj", "wq"}, {"k_proj", "wk"}, {"v_proj", "wv"}, {"o_proj", "wo"}}) {
                    ms.add(copy(hf + "self_attn." + p[0] + ".weight", us + "attention." + p[1] + ".weight"));
                    if (cfg.attentionBias()) ms.add(copy(hf + "self_attn." + p[0] + ".bias", us + "attention." + p[1] + ".bias"));
                }
                ms.add(copy(hf + "post_attention_layernorm.weight", us + "ffn_norm.weight"));
                for (String[] p : new String[][] {{"gate_proj", "w1"}, {"up_proj", "w3"}, {"down_proj", "w2"}}) {
                    ms.add(copy(hf + "mlp." + p[0] + ".weight", us + "feed_forward." + p[1] + ".weight"));
                    if (cfg.mlpBias()) ms.add(copy(hf + "mlp." + p[0] + ".bias", us + "feed_forward." + p[1] + ".bias"));
                }
            }
            ms.add(copy("model.norm.weight", "norm.weight"));
            if (!cfg.tieEmbeddings()) ms.add(copy("lm_head.weight", "output.weight"));
            return ms;
        }
        String p = gpt2Prefix;
        ms.add(copy(p + "wte.weight", "tok_embeddings.weight"));
        ms.add(copy(p + "wpe.weight", "pos_embeddings.weight"));
        for (int i = 0; i < cfg.nLayers(); i++) {
            String hf = p + "h." + i + ".", us = "layers." + i + ".";
            ms.add(copy(hf + "ln_1.weight", us + "attention_norm.weight"));
            ms.add(copy(hf + "ln_1.bias", us + "attention_norm.bias"));
            String a = us + "attention.";
            ms.add(new TensorMapping(hf + "attn.c_attn.weight", List.of(a + "wq.weight", a + "wk.weight", a + "wv.weight"), true));
            ms.add(new TensorMapping(hf + "attn.c_attn.bias", List.of(a + "wq.bias", a + "wk.bias", a + "wv.bias"), false));
            ms.add(conv1d(hf + "attn.c_proj.weight", a + "wo.weight"));
            ms.add(copy(hf + "attn.c_proj.bias", a + "wo.bias"));
            ms.add(copy(hf + "ln_2.weight", us + "ffn_norm.weight"));
            ms.add(copy(hf + "ln_2.bias", us + "ffn_norm.bias"));
            ms.add(conv1d(hf + "mlp.c_fc.weight", us + "feed_forward.w1.weight"));
            ms.add(copy(hf + "mlp.c_fc.bias", us + "feed_forward.w1.bias"));
            ms.add(conv1d(hf + "mlp.c_proj.weight", us + "feed_forward.w2.weight"));
            ms.add(copy(hf + "mlp.c_proj.bias", us + "feed_forward.w2.bias"));
        }
        ms.add(copy(p + "ln_f.weight", "norm.weight"));
        ms.add(copy(p + "ln_f.bias", "norm.bias"));
        if (!cfg.tieEmbeddings()) ms.add(copy("lm_head.weight", "output.weight"));
        return ms;
    }

    private static TensorMapping copy(String hf, String ours) { return new TensorMapping(hf, List.of(ours), false); }

    private static TensorMapping conv1d(String hf, String ours) { return new TensorMapping(hf, List.of(ours), true); }

    /** Shape of the HF tensor: ours stacked along dim 0, then transposed if asked. */
    static int[] hfShape(List<int[]> ours, boolean transposed) {
        int[] s = ours.get(0).clone();
        for (int i = 1; i < ours.size(); i++) s[0] += ours.get(i)[0];
        return transposed ? new int[] {s[1], s[0]} : s;
    }

    static double[] join(List<double[]> parts, List<int[]> shapes, boolean transposed) {
        int total = parts.stream().mapToInt(a -> a.length).sum(), at = 0;
        double[] stacked = new double[total];
        for (double[] part : parts) {
            System.arraycopy(part, 0, stacked, at, part.length);
            at += part.length;
        }
        if (!transposed) return stacked;
        int[] s = hfShape(shapes, false);
        return transpose(stacked, s[0], s[1]);
    }

    static List<double[]> split(double[] hf, List<int[]> shapes, boolean transposed) {
        double[] stacked = hf;
        if (transposed) {
            int[] s = hfShape(shapes, false);
            stacked = transpose(hf, s[1], s[0]);
        }
        List<double[]> parts = new ArrayList<>();
        int at = 0;
        for (int[] shape : shapes) {
            int n = (int) Tensor.numel(shape);
            parts.add(Arrays.copyOfRange(stacked, at, at + n));
            at += n;
        }
        return parts;
    }

    private static double[] transpose(double[] a, int rows, int cols) {
        double[] t = new double[a.length];
        for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
        return t;
    }
}
