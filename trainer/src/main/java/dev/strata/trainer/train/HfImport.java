package dev.strata.trainer.train;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.Storage;
import dev.strata.config.JobConfig;
import dev.strata.runtime.DType;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.AdamW;
import dev.strata.trainer.hf.HfModels;
import dev.strata.trainer.model.ModelConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;

/**
 * {@code strata ckpt import-hf}: a Hugging Face directory as a Strata checkpoint of step 0 — its weights, fresh
 * AdamW moments, the data at its start — whose settings state the model's shape, so a job can resume it (or
 * fine-tune from it) at any layout without the directory.
 */
public final class HfImport {
    private HfImport() {}

    public static String run(Storage fs, Path hf, String out) throws IOException {
        if (fs.exists(out)) throw new IllegalArgumentException("--out " + out + " already exists; give a new directory");
        var loaded = HfModels.load(hf, CpuBackend.INSTANCE, DType.F32);
        ModelConfig cfg = loaded.model().config();
        JobConfig job = JobConfig.parse(String.format(Locale.ROOT, """
                model { preset = "", family = %s, vocab_size = %d, dim = %d, n_layers = %d, n_heads = %d, n_kv_heads = %d, ffn_dim = %d,
                        max_seq_len = %d, norm_eps = %s, rope_theta = %s, tie_embeddings = %s }
                training.seq_len = %d
                """, cfg.family().name().toLowerCase(Locale.ROOT), cfg.vocabSize(), cfg.dim(), cfg.nLayers(), cfg.nHeads(), cfg.nKvHeads(), cfg.ffnDim(),
                cfg.maxSeqLen(), cfg.normEps(), cfg.ropeTheta(), cfg.tieEmbeddings(), Math.min(cfg.maxSeqLen(), 1024)), hf.resolve("config.json").toString());
        if (!Models.config(job.model()).equals(cfg))
            throw new IllegalArgumentException(hf.resolve("config.json") + ": this model's shape (head_dim " + cfg.headDim() + ", biases "
                    + cfg.attentionBias() + "/" + cfg.mlpBias() + ") is not one a job file states; fine-tune from the directory with model.init_from instead");
        var tr = job.training();
        try (AdamW opt = new AdamW(loaded.model().parameters(), new AdamW.Settings(tr.beta1(), tr.beta2(), tr.eps(), tr.weightDecay(), tr.decayEmbeddings()));
             HostSnapshot snapshot = new HostSnapshot(CpuBackend.INSTANCE)) {
            var pieces = TrainingState.pieces(loaded.model(), opt, Rank.SINGLE, null, snapshot);
            var state = new Checkpointer.State(TrainingState.layout(job), job.toMap(), Map.of("epoch", 0, "cursor", 0, "train_dir", job.data().dir()),
                    Map.of("seed", job.seed()), Map.of("step", 0), Map.of("imported_from", hf.toAbsolutePath().toString()));
            return new Checkpointer(fs, out, 1, 0).save(0, 0, 1, pieces, state, Duration.ZERO);
        }
    }
}
