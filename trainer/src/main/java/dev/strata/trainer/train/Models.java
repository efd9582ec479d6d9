package dev.strata.trainer.train;

import dev.strata.trainer.model.Stage;
import dev.strata.config.ConfigError;
import dev.strata.config.JobConfig;
import dev.strata.config.LoraSpec;
import dev.strata.config.ModelSpec;
import dev.strata.config.PrecisionSpec;
import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.checkpoints.Storage;
import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.pipeline.StageSplit;
import dev.strata.parallel.tensor.SequenceParallel;
import dev.strata.parallel.tensor.TensorParallelPlan;
import dev.strata.parallel.tensor.VocabParallel;
import dev.strata.runtime.nn.SequenceLayout;
import dev.strata.runtime.nn.Vocabulary;
import dev.strata.quant.Fp8Linear;
import dev.strata.quant.Fp8Plan;
import dev.strata.quant.Rotation;
import dev.strata.quant.Scaling;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.DenseLinear;
import dev.strata.runtime.nn.LoraPlan;
import dev.strata.trainer.model.Precision;
import dev.strata.trainer.model.Transformer;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.trainer.hf.HfModels;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.ModelConfig;
import java.io.IOException;
import java.util.Map;
import java.nio.file.Path;
import java.util.List;

/** Turns a job's model and backend settings into a {@link ModelConfig}, a backend, a dtype and the model itself. */
public final class Models {
    private Models() {}

    public static ModelConfig config(ModelSpec m) {
        boolean gpt2 = m.family().equals("gpt2");
        int kv = m.nKvHeads() == 0 ? m.nHeads() : m.nKvHeads();
        int ffn = m.ffnDim() != 0 ? m.ffnDim() : gpt2 ? 4 * m.dim() : (8 * m.dim() / 3 + 63) / 64 * 64;
        boolean tie = m.tieEmbeddings() != null ? m.tieEmbeddings() : gpt2;
        return new ModelConfig(gpt2 ? ModelConfig.Family.GPT2 : ModelConfig.Family.LLAMA, m.vocabSize(), m.dim(),
                m.nLayers(), m.nHeads(), kv, m.dim() / m.nHeads(), ffn, m.maxSeqLen(), m.normEps(), m.ropeTheta(), tie,
                gpt2, gpt2);
    }

    public static Backend backend(JobConfig job) { return backend(job.backend()); }

    /**
     * cpu, cuda (device 0; an error says what is missing), or auto: CUDA when a GPU is usable, else CPU; the names a
     * job file and --backend take.
     */
    public static Backend backend(String name) { return onGpu(name) ? CudaBackend.open(0) : CpuBackend.INSTANCE; }

    /** Whether the backend named so computes on the GPU. */
    public static boolean onGpu(String name) {
        return switch (name) {
            case "cpu" -> false;
            case "cuda" -> true;
            case "auto" -> CudaBackend.unavailableReason() == null;
            default -> throw new IllegalArgumentException("backend must be cpu, cuda or auto, got " + name);
        };
    }

    /**
     * The maker of the model's linear layers: dense in the job's dtype, split over tp (null: whole) by Megatron-LM's
     * plan, or FP8 where the job's precision plan says, with LoRA adapters on top where the job's lora plan says.
     */
    public static Linear.Maker linears(JobConfig job, ModelConfig cfg, Backend backend, DType dtype, Communicator tp, SequenceParallel sp) {
        DType params = Precision.of(dtype).params();
        Linear.Maker linears = DenseLinear.maker(backend, params);
        PrecisionSpec p = job.precision();
        if (p.fp8()) // below tensor parallelism, which makes its slices through it
            linears = new Fp8Plan(Rotation.parse(p.rotation()), p.hadamardBlock() == 0 ? Fp8Linear.FULL_BLOCK : p.hadamardBlock(),
                    Scaling.parse(p.scaling()), p.amaxHistory(), p.exclude())
                    .maker(backend, params, linears);
        if (tp != null) linears = TensorParallelPlan.megatron(cfg.headDim()).maker(tp, sp, backend, params, linears);
        LoraSpec lora = job.lora();
        if (lora.enabled()) linears = new LoraPlan(lora.rank(), lora.alpha(), lora.targets()).maker(backend, params, linears);
        return linears;
    }

    /**
     * A freshly built model of the job (weights zero until initialised or loaded); under LoRA everything but the
     * adapters is frozen before any gradient is allocated.
     */
    public static Transformer model(JobConfig job, ModelConfig cfg, Backend backend, DType dtype) {
        return model(job, cfg, backend, dtype, null, Stage.whole(cfg));
    }

    /**
     * As {@link #model(JobConfig, ModelConfig, Backend, DType)}: this rank's slices of its pipeline stage under
     * tensor parallelism over tp (null: whole).
     */
    public static Transformer model(JobConfig job, ModelConfig cfg, Backend backend, DType dtype, Communicator tp, Stage stage) {
        if (tp != null) checkTensorParallel(job, cfg, tp.size());
        SequenceParallel sp = tp != null && job.parallel().sequenceParallel() ? new SequenceParallel(tp) : null;
        Transformer model = new Transformer(cfg, backend, dtype, linears(job, cfg, backend, dtype, tp, sp), stage,
                tp == null ? Vocabulary.WHOLE : new VocabParallel(tp, sp), sp == null ? SequenceLayout.WHOLE : sp);
        if (job.lora().enabled()) {
            for (String target : job.lora().targets())
                if (model.linears().keySet().stream().noneMatch(name -> name.contains(target)))
                    throw new ConfigError(job.source() + ": lora.targets entry \"" + target + "\" matches no linear layer of the model"
                            + (cfg.tieEmbeddings() ? " (a tied LM head is the embedding, which takes no adapter)" : "")
                            + "; its linears are named like " + String.join(", ", model.linears().keySet().stream().limit(8).toList()));
            LoraPlan.freezeAllButAdapters(model.parameters());
            if (tp != null) TensorParallelPlan.placeAdapters(model.linears().values(), tp);
        }
        return model;
    }

    /**
     * The job's model: initialised from the seed, or with the weights of model.init_from: a Hugging Face directory,
     * or a Strata checkpoint or run directory (its latest checkpoint; weights only, so fine-tuning starts at step 0
     * with fresh optimizer state). tp: this rank's tensor-parallel group (null: the whole model), whose slice of
     * every planned layer it builds.
     */
    static Transformer build(JobConfig job, Backend backend, DType dtype, Communicator tp, int stageIndex, int stages) throws IOException {
        Stage stage = stage(job, modelConfig(job), stageIndex, stages);
        Path from = Path.of(job.model().initFrom());
        boolean checkpoint = java.nio.file.Files.isRegularFile(from.resolve("manifest.json"));
        if (!job.model().initFrom().isEmpty() && (checkpoint || java.nio.file.Files.isDirectory(from.resolve("checkpoints")))) {
            Storage fs = new LocalStorage();
            String dir = checkpoint ? from.toString() : Checkpointer.ofRun(fs, from.toString(), 1).latest().orElseThrow(() ->
                    new IllegalArgumentException(job.source() + ": model.init_from = " + from + " is a run directory without a checkpoint"));
            Transformer model = model(job, config(job.model()), backend, dtype, tp, stage);
            Initializer.initializeAdapters(model, job.seed());
            TrainingState.restore(model, null, dev.strata.checkpoints.CheckpointReader.open(fs, dir));
            return model;
        }
        if (!job.model().initFrom().isEmpty()) {
            Transformer model = HfModels.load(Path.of(job.model().initFrom()), backend, dtype, cfg -> model(job, cfg, backend, dtype, tp, stage)).model();
            Initializer.initializeAdapters(model, job.seed());
            return model;
        }
        Transformer model = model(job, config(job.model()), backend, dtype, tp, stage);
        Initializer.initialize(model, job.seed());
        return model;
    }

    /**
     * Pipeline stage stage of stages: its layers from parallel.pp_layers, or balanced by cost (per token, forward and
     * backward: 6 flops per weight and 12·T·C for attention's scores a block; 6·V·C for the head and the loss; a
     * lookup's C for the embedding), the first with the embedding, the last with the head. Interleaved, the model is
     * cut into stages × virtual_stages chunks and the stage holds chunks stage, stage + stages, ...
     */
    static Stage stage(JobConfig job, ModelConfig cfg, int stage, int stages) {
        if (stages == 1) return Stage.whole(cfg);
        var p = job.parallel();
        int v = p.virtualStages(), chunks = stages * v;
        if (chunks > cfg.nLayers())
            throw new ConfigError(job.source() + ": parallel.pp = " + stages + (v > 1 ? " x virtual_stages = " + v + " = " + chunks + " chunks" : " stages")
                    + " need as many layers, but model.n_layers = " + cfg.nLayers());
        long c = cfg.dim(), attention = c * cfg.headDim() * (2L * cfg.nHeads() + 2L * cfg.nKvHeads());
        long mlp = (cfg.family() == ModelConfig.Family.LLAMA ? 3L : 2L) * c * cfg.ffnDim();
        double layer = 6.0 * (attention + mlp) + 12.0 * job.training().seqLen() * c, head = 6.0 * cfg.paddedVocabSize() * c;
        List<Integer> counts = p.ppLayers().isEmpty() ? StageSplit.balanced(cfg.nLayers(), chunks, layer, c, head) : p.ppLayers();
        int[] first;
        try {
            first = StageSplit.firstLayers(counts, cfg.nLayers());
        } catch (IllegalArgumentException e) {
            throw new ConfigError(job.source() + ": " + e.getMessage());
        }
        List<Stage.Layers> mine = new java.util.ArrayList<>();
        for (int k = stage; k < chunks; k += stages) mine.add(new Stage.Layers(first[k], first[k + 1]));
        return new Stage(mine, stage == 0, stage == stages - 1);
    }

    /** A model that does not split over parallel.tp is refused in one line naming the setting and the numbers. */
    static void checkTensorParallel(JobConfig job, ModelConfig cfg, int tp) {
        String at = job.source() + ": parallel.tp = " + tp + " ";
        if (cfg.nHeads() % tp != 0) throw new ConfigError(at + "does not divide model.n_heads = " + cfg.nHeads() + "; pick a tp that does");
        if (cfg.nKvHeads() % tp != 0 && tp % cfg.nKvHeads() != 0)
            throw new ConfigError(at + "neither divides nor is a multiple of model.n_kv_heads = " + cfg.nKvHeads()
                    + " (key/value heads are split, or each shared by tp / n_kv_heads ranks)");
        if (cfg.ffnDim() % tp != 0) throw new ConfigError(at + "does not divide model.ffn_dim = " + cfg.ffnDim());
        if (cfg.paddedVocabSize() % tp != 0)
            throw new ConfigError(at + "does not divide the vocabulary padded to " + cfg.paddedVocabSize() + " rows (model.vocab_size = " + cfg.vocabSize() + ")");
        long rows = (long) job.training().batchSize() * job.training().seqLen();
        if (job.parallel().sequenceParallel() && rows % tp != 0)
            throw new ConfigError(at + "does not divide the " + rows + " rows (training.batch_size × seq_len) that parallel.sequence_parallel shards");
        if (job.precision().fp8()) {
            if (!job.precision().scaling().equals("delayed"))
                throw new ConfigError(at + "with FP8 needs precision.scaling = delayed, whose amax histories the tp ranks share so every shard "
                        + "of a layer scales alike; got " + job.precision().scaling());
            int[] perRank = {cfg.nHeads() * cfg.headDim() / tp, Math.max(1, cfg.nKvHeads() / tp) * cfg.headDim(), cfg.ffnDim() / tp};
            String[] what = {"the query heads' features", "the key/value heads' features", "model.ffn_dim"};
            for (int i = 0; i < perRank.length; i++)
                if (perRank[i] % 16 != 0)
                    throw new ConfigError(at + "splits " + what[i] + " into " + perRank[i] + " a rank, and FP8 GEMMs need multiples of 16; "
                            + "lower parallel.tp or exclude those layers with precision.exclude");
        }
        if (job.lora().enabled()) {
            if (job.parallel().sequenceParallel())
                throw new ConfigError(at + "with LoRA and parallel.sequence_parallel is not supported yet; set sequence_parallel = false");
        }
    }

    /** The model the job trains: model.init_from's config.json when that is a Hugging Face directory, else the job's model section. */
    @SuppressWarnings("unchecked")
    public static ModelConfig modelConfig(JobConfig job) throws IOException {
        Path hf = Path.of(job.model().initFrom()).resolve("config.json");
        if (job.model().initFrom().isEmpty() || !java.nio.file.Files.isRegularFile(hf)) return config(job.model());
        Map<String, Object> c;
        try {
            c = new com.fasterxml.jackson.databind.ObjectMapper().readValue(hf.toFile(), Map.class);
        } catch (com.fasterxml.jackson.core.JacksonException e) {
            throw new IllegalArgumentException(hf + " is not valid JSON: " + e.getOriginalMessage());
        }
        return HfModels.configFromHf(c, hf.toString());
    }

    public static DType dtype(JobConfig job, Backend backend) {
        DType d = DType.parse(job.dtype());
        if (backend instanceof CpuBackend && d != DType.F32 && d != DType.F64)
            throw new ConfigError(job.source() + ": dtype = " + job.dtype() + " is not available on the CPU backend (use f32 or f64)");
        if (backend instanceof CudaBackend && d != DType.F32 && d != DType.BF16)
            throw new ConfigError(job.source() + ": dtype = " + job.dtype() + " is not available on the CUDA backend (use bf16 or f32)");
        return d;
    }
}
