package dev.strata.config;

/**
 * Steps, batch geometry, AdamW, the learning-rate schedule, activation checkpointing (none, selective, full) and
 * whether the GPU's sums are added in a fixed order (deterministic: the same run gives the same bits).
 */
public record TrainingSpec(int steps, int batchSize, int seqLen, int gradAccumSteps, double lr, double minLr,
                           int warmupSteps, double weightDecay, boolean decayEmbeddings, double beta1, double beta2,
                           double eps, double gradClip, String activationCheckpointing, boolean deterministic) {

    static TrainingSpec from(Fields f) {
        var t = new TrainingSpec(f.positive("training.steps"), f.positive("training.batch_size"),
                f.positive("training.seq_len"), f.positive("training.grad_accum_steps"), f.number("training.lr"),
                f.number("training.min_lr"), f.nonNegative("training.warmup_steps"), f.number("training.weight_decay"),
                f.bool("training.decay_embeddings"), f.number("training.beta1"), f.number("training.beta2"),
                f.number("training.eps"), f.number("training.grad_clip"),
                f.oneOf("training.activation_checkpointing", "none", "selective", "full"), f.bool("training.deterministic"));
        f.require(t.lr > 0, "training.lr must be positive, got " + t.lr);
        f.require(t.minLr >= 0 && t.minLr <= t.lr, "training.min_lr must lie in [0, training.lr], got " + t.minLr);
        f.require(t.beta1 >= 0 && t.beta1 < 1, "training.beta1 must lie in [0, 1), got " + t.beta1);
        f.require(t.beta2 >= 0 && t.beta2 < 1, "training.beta2 must lie in [0, 1), got " + t.beta2);
        f.require(t.eps > 0, "training.eps must be positive, got " + t.eps);
        f.require(t.weightDecay >= 0, "training.weight_decay must be 0 or more, got " + t.weightDecay);
        f.require(t.gradClip >= 0, "training.grad_clip must be 0 (off) or positive, got " + t.gradClip);
        return t;
    }
}
