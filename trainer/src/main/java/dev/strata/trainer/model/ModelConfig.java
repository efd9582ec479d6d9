package dev.strata.trainer.model;

/**
 * Shape of a decoder-only transformer. GPT-2: LayerNorm, learned positions, tanh-GELU MLP, biases, tied embeddings.
 * Llama: RMSNorm, RoPE, SwiGLU, grouped-query attention, no biases, untied head.
 */
public record ModelConfig(
        Family family,
        int vocabSize,
        int dim,            // C
        int nLayers,
        int nHeads,         // H
        int nKvHeads,       // Hkv
        int headDim,        // D
        int ffnDim,         // F, hidden size of the MLP
        int maxSeqLen,
        double normEps,
        double ropeTheta,
        boolean tieEmbeddings,
        boolean attentionBias,
        boolean mlpBias) {

    public enum Family { GPT2, LLAMA }

    public ModelConfig {
        require(vocabSize > 0, "vocab_size must be positive, got " + vocabSize);
        require(dim > 0 && nLayers > 0 && nHeads > 0 && headDim > 0 && ffnDim > 0 && maxSeqLen > 0,
                "dim, n_layers, n_heads, head_dim, ffn_dim and max_seq_len must be positive");
        require(nKvHeads > 0 && nHeads % nKvHeads == 0, "n_heads (" + nHeads + ") must be a multiple of n_kv_heads (" + nKvHeads + ")");
        require(family == Family.LLAMA || nKvHeads == nHeads, "GPT-2 has no grouped-query attention: n_kv_heads must equal n_heads");
        require(family == Family.GPT2 || headDim % 2 == 0, "RoPE needs an even head_dim, got " + headDim);
        require(normEps > 0, "norm_eps must be positive, got " + normEps);
    }

    /** GPT-2 with the usual head size C/H and MLP 4C. */
    public static ModelConfig gpt2(int vocabSize, int dim, int nLayers, int nHeads, int maxSeqLen) {
        require(dim % nHeads == 0, "dim " + dim + " is not a multiple of n_heads " + nHeads);
        return new ModelConfig(Family.GPT2, vocabSize, dim, nLayers, nHeads, nHeads, dim / nHeads, 4 * dim, maxSeqLen,
                1e-5, 0, true, true, true);
    }

    public static ModelConfig llama(int vocabSize, int dim, int nLayers, int nHeads, int nKvHeads, int ffnDim, int maxSeqLen) {
        require(dim % nHeads == 0, "dim " + dim + " is not a multiple of n_heads " + nHeads);
        return new ModelConfig(Family.LLAMA, vocabSize, dim, nLayers, nHeads, nKvHeads, dim / nHeads, ffnDim, maxSeqLen,
                1e-5, 10000, false, false, false);
    }

    /** The padded vocabulary is a multiple of this many rows (as llm.c and Megatron-LM pad theirs). */
    public static final int VOCAB_ALIGNMENT = 128;

    /**
     * Rows of the embedding and the LM head: the vocabulary rounded up to {@link #VOCAB_ALIGNMENT}, so that the
     * head's three GEMMs, the largest of a small model, run on whole tiles (GPT-2's 50,257 becomes 50,304). The rows
     * past vocab_size are zero, never a target and never in the loss's softmax, so they stay zero; checkpoints and
     * Hugging Face directories hold the vocab_size real rows only.
     */
    public int paddedVocabSize() { return Math.ceilDiv(vocabSize, VOCAB_ALIGNMENT) * VOCAB_ALIGNMENT; }

    /** Parameters of the whole model, counting a tied head once. */
    public long parameterCount() {
        long c = dim, q = (long) nHeads * headDim, kv = (long) nKvHeads * headDim;
        long attention = 2 * c * q + 2 * c * kv + (attentionBias ? q + 2 * kv + c : 0);
        long mlp = family == Family.GPT2 ? 2 * c * ffnDim + (mlpBias ? ffnDim + c : 0)
                                         : 3 * c * ffnDim + (mlpBias ? 2L * ffnDim + c : 0);
        long norms = family == Family.GPT2 ? 4 * c : 2 * c;
        long finalNorm = family == Family.GPT2 ? 2 * c : c;
        long embeddings = (long) vocabSize * c + (family == Family.GPT2 ? (long) maxSeqLen * c : 0);
        return embeddings + nLayers * (attention + mlp + norms) + finalNorm + (tieEmbeddings ? 0 : (long) vocabSize * c);
    }

    /** Training FLOPs per token (forward + backward): 6 per matmul weight plus attention's 12·L·H·D·T (PaLM's count). */
    public double trainingFlopsPerToken(int seqLen) {
        long c = dim, q = (long) nHeads * headDim, kv = (long) nKvHeads * headDim;
        long matmulWeights = nLayers * (2 * c * q + 2 * c * kv + (family == Family.GPT2 ? 2L : 3L) * c * ffnDim)
                + (long) vocabSize * c;
        return 6.0 * matmulWeights + 12.0 * nLayers * q * seqLen;
    }

    private static void require(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(message);
    }
}
