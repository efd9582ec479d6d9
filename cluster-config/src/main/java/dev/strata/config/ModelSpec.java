package dev.strata.config;

/**
 * The model as the job file gives it. Zero for n_kv_heads and ffn_dim means "the family's default"; null for
 * tieEmbeddings too. {@code initFrom} names a Hugging Face directory whose config.json then decides the shape.
 */
public record ModelSpec(String preset, String initFrom, String family, int vocabSize, int dim, int nLayers, int nHeads,
                        int nKvHeads, int ffnDim, int maxSeqLen, double normEps, double ropeTheta, Boolean tieEmbeddings) {

    static ModelSpec from(Fields f) {
        String tie = f.oneOf("model.tie_embeddings", "auto", "true", "false");
        var m = new ModelSpec(f.string("model.preset"), f.string("model.init_from"), f.oneOf("model.family", "gpt2", "llama"),
                f.positive("model.vocab_size"), f.positive("model.dim"), f.positive("model.n_layers"),
                f.positive("model.n_heads"), f.nonNegative("model.n_kv_heads"), f.nonNegative("model.ffn_dim"),
                f.positive("model.max_seq_len"), f.number("model.norm_eps"), f.number("model.rope_theta"),
                tie.equals("auto") ? null : Boolean.valueOf(tie));
        f.require(m.normEps > 0, "model.norm_eps must be positive, got " + m.normEps);
        f.require(m.ropeTheta > 0, "model.rope_theta must be positive, got " + m.ropeTheta);
        f.require(m.dim % m.nHeads == 0, "model.dim (" + m.dim + ") must be a multiple of model.n_heads (" + m.nHeads + ")");
        f.require(m.nKvHeads == 0 || m.nHeads % m.nKvHeads == 0,
                "model.n_heads (" + m.nHeads + ") must be a multiple of model.n_kv_heads (" + m.nKvHeads + ")");
        return m;
    }
}
