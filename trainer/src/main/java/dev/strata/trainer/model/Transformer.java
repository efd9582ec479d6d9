package dev.strata.trainer.model;

import dev.strata.runtime.nn.DenseLinear;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.ActivationOffload;
import dev.strata.runtime.nn.Activations;
import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.nn.SequenceLayout;
import dev.strata.runtime.nn.StageModel;
import dev.strata.runtime.nn.Vocabulary;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The decoder-only transformer: embedding -> N x {@link Block} -> norm -> LM head. A {@link Stage} selects a slice
 * (ranges of blocks, with or without the embedding and the head) so a pipeline stage holds only its part; a
 * stage of an interleaved pipeline holds several ranges (chunks), run one at a time.
 * Parameters are created zeroed; {@link Initializer} or a checkpoint fills them.
 */
public final class Transformer implements StageModel {

    private final ModelConfig cfg;
    private final Backend backend;
    private final DType dtype;
    private final Precision precision;
    private final Stage stage;
    private final Embedding tokEmbeddings, posEmbeddings; // (V,C), (maxT,C); null where absent
    private final List<Block> layers = new ArrayList<>(); // the stage's blocks, chunk after chunk
    private final int[] chunkStart;                       // chunk c holds layers[chunkStart[c] .. chunkStart[c+1])
    private final int[] layerIndex;                       // layers[i] is the model's block layerIndex[i]
    private final Norm norm;
    private final Linear output;                          // (V,C), the embedding itself when tied
    private final Vocabulary vocabulary;                  // whole, or a shard of its rows per tp rank
    private final SequenceLayout sequence;                // the residual stream's rows: all, or a shard per tp rank
    private final Map<String, Linear> linearsByName = new LinkedHashMap<>();
    private Tensor positions;                             // (B*T) position ids of GPT-2's learned positions, kept per shape
    private final Rope rope;                              // (maxT, D/2) tables every block rotates by; null for GPT-2
    private Documents documents;                          // packed examples of the batches that follow; null: one a row
    private int positionsSeq;                             // the T of positions
    private ActivationCheckpointing checkpointing = ActivationCheckpointing.NONE;
    private ActivationOffload activationOffload;
    private java.util.function.Consumer<List<Parameter>> gradientsDone; // null: nobody listens, backward builds no lists
    private java.util.function.Consumer<List<Parameter>> parametersNeeded; // null: nobody listens

    /** dtype is the training dtype: f64, f32, or bf16 (bf16 activations, f32 parameters; see {@link Precision}). */
    /**
     * Kept for backward in the micro-batch's {@link Activations}: each block's input hidden state, then the final
     * norm's input and output (B*T,C); the shape, for recomputation.
     */
    private record Saved(List<Tensor> hidden, List<ActivationOffload.Stashed> onHost, int b, int t) {} // onHost[i] (blocks only): hidden[i] is on the host, hidden[i] null

    public Transformer(ModelConfig cfg, Backend backend, DType dtype) {
        this(cfg, backend, dtype, DenseLinear.maker(backend, Precision.of(dtype).params()), Stage.whole(cfg));
    }

    /** linears must make parameters in {@code Precision.of(dtype).params()}. */
    public Transformer(ModelConfig cfg, Backend backend, DType dtype, Linear.Maker linears, Stage stage) {
        this(cfg, backend, dtype, linears, stage, Vocabulary.WHOLE, SequenceLayout.WHOLE);
    }

    /**
     * As above, with the vocabulary-sized tensors (token embedding, LM head, loss) laid out as vocabulary says, and
     * the residual stream's rows between the blocks' regions as sequence says.
     */
    public Transformer(ModelConfig cfg, Backend backend, DType dtype, Linear.Maker linears, Stage stage, Vocabulary vocabulary,
                       SequenceLayout sequence) {
        int previousEnd = 0;
        for (Stage.Layers c : stage.chunks()) {
            if (c.first() < previousEnd || c.end() > cfg.nLayers() || c.first() > c.end())
                throw new IllegalArgumentException("stage layers " + stage.chunks() + " are not ranges in order within the model's " + cfg.nLayers() + " layers");
            previousEnd = c.end();
        }
        this.cfg = cfg;
        this.backend = backend;
        this.dtype = dtype;
        this.precision = Precision.of(dtype);
        this.stage = stage;
        this.vocabulary = vocabulary;
        this.sequence = sequence;
        boolean gpt2 = cfg.family() == ModelConfig.Family.GPT2;
        DType params = precision.params(), activations = precision.activations();
        int vocab = cfg.paddedVocabSize(); // Vp
        tokEmbeddings = stage.embedding() ? new Embedding(backend, params, activations, "tok_embeddings", vocab, cfg.dim(), vocabulary) : null;
        posEmbeddings = stage.embedding() && gpt2 ? new Embedding(backend, params, activations, "pos_embeddings", cfg.maxSeqLen(), cfg.dim()) : null;
        rope = gpt2 ? null : Rope.of(backend, params, cfg.maxSeqLen(), cfg.headDim(), cfg.ropeTheta());
        Linear.Maker maker = linears;
        linears = (name, in, out, bias) -> {
            Linear l = maker.make(name, in, out, bias);
            linearsByName.put(name, l);
            return l;
        };
        chunkStart = new int[stage.chunks().size() + 1];
        layerIndex = new int[stage.layerCount()];
        for (int c = 0; c < stage.chunks().size(); c++) {
            for (int i = stage.chunks().get(c).first(); i < stage.chunks().get(c).end(); i++) {
                layerIndex[layers.size()] = i;
                layers.add(new Block(backend, params, "layers." + i, cfg, linears, rope));
            }
            chunkStart[c + 1] = layers.size();
        }
        norm = stage.head() ? Block.norm(backend, params, "norm", cfg) : null;
        if (!stage.head()) output = null;
        else if (cfg.tieEmbeddings() && tokEmbeddings != null) output = vocabulary.tiedHead(tokEmbeddings.weight());
        else if (cfg.tieEmbeddings()) {
            Parameter table = new Parameter("tok_embeddings.weight", Parameter.Kind.EMBEDDING, backend.zeros(params, vocabulary.rows(vocab), cfg.dim()));
            table.place(vocabulary.placement(vocab, cfg.dim()));
            output = vocabulary.tiedHead(table);
        } else output = linears.make("output", cfg.dim(), vocab, false);
    }

    public ModelConfig config() { return cfg; }

    /** Every linear layer the maker built, by name ("layers.0.attention.wq", "output"). */
    public Map<String, Linear> linears() { return Collections.unmodifiableMap(linearsByName); }

    public Backend backend() { return backend; }

    /** The training dtype the model was built for. */
    public DType dtype() { return dtype; }

    public Precision precision() { return precision; }

    public Stage stage() { return stage; }

    @Override public int chunks() { return stage.chunks().size(); }

    /**
     * Called during backward with each group of parameters whose gradients it has finished: the head (a tied head's
     * weight waits for the embedding), each block from the last, then the embeddings. Data parallelism reduces each
     * group while backward goes on.
     */
    public void onGradientsDone(java.util.function.Consumer<List<Parameter>> listener) { this.gradientsDone = listener; }

    /**
     * Called during forward with each group of parameters it is about to read: the embeddings, each block from the
     * first, then the head. An optimizer still writing them makes the device wait for each layer's own (null: none).
     */
    public void onParametersNeeded(java.util.function.Consumer<List<Parameter>> listener) { this.parametersNeeded = listener; }

    private void needs(List<Parameter> params) {
        if (parametersNeeded != null) parametersNeeded.accept(params);
    }

    private List<Parameter> embeddingWeights() {
        return posEmbeddings == null ? List.of(tokEmbeddings.weight()) : List.of(tokEmbeddings.weight(), posEmbeddings.weight());
    }

    private List<Parameter> headParameters() {
        List<Parameter> head = new ArrayList<>(norm.parameters());
        head.addAll(output.parameters());
        return head;
    }

    /** Applies activation checkpointing from outside: the chosen blocks are recomputed during backward. */
    public void checkpointActivations(ActivationCheckpointing mode) { this.checkpointing = mode; }

    /** From outside too: the recomputed blocks' inputs wait for backward in host memory (null: on the device). */
    public void offloadActivations(ActivationOffload offload) { this.activationOffload = offload; }

    /**
     * input: token ids (B,T) int32 when this stage has the embedding, else hidden states (B*T,C).
     * Returns logits (B*T,Vp) over the padded vocabulary ({@link ModelConfig#paddedVocabSize}; the columns past V
     * are padding), or this rank's columns of them under vocabulary parallelism, when it has the head, else hidden
     * states (B*T,C). A stage of one chunk only.
     */
    public Tensor forward(Tensor input, int b, int t) { return forward(onlyChunk(), input, b, t); }

    private int onlyChunk() {
        if (chunks() != 1) throw new IllegalStateException("this stage holds " + chunks() + " chunks: name the one to run");
        return 0;
    }

    private boolean embeds(int chunk) { return chunk == 0 && tokEmbeddings != null; }

    private boolean hasHead(int chunk) { return chunk == chunks() - 1 && stage.head(); }

    /** As {@link #forward(Tensor, int, int)} through the stage's chunk-th chunk: the first embeds, the last computes logits. */
    private Tensor forward(int chunk, Tensor input, int b, int t) {
        if (t > cfg.maxSeqLen()) throw new IllegalArgumentException("sequence length " + t + " exceeds max_seq_len " + cfg.maxSeqLen());
        Tensor x;
        if (embeds(chunk)) {
            needs(embeddingWeights());
            x = tokEmbeddings.forward(input.view(b * t));
            if (posEmbeddings != null) {
                try (Tensor pe = posEmbeddings.forward(documents != null ? documents.positions : positions(b, t))) {
                    backend.addInPlace(x, pe);
                }
            }
            Tensor whole = x;
            x = sequence.shard(whole); // (B*T,C), or this rank's rows of it
            if (x != whole) whole.close();
        } else {
            x = input;
        }
        List<Tensor> saved = new ArrayList<>();
        List<ActivationOffload.Stashed> onHost = new ArrayList<>();
        Activations.current().keep(this, new Saved(saved, onHost, b, t));
        for (int i = chunkStart[chunk]; i < chunkStart[chunk + 1]; i++) {
            saved.add(x);
            onHost.add(null);
            needs(layers.get(i).parameters());
            x = layers.get(i).forward(x, b, t);
            if (checkpointing.recomputes(layerIndex[i])) {
                layers.get(i).discard();
                int at = saved.size() - 1;
                if (activationOffload != null && (at > 0 || embeds(chunk))) onHost.set(at, activationOffload.stash(saved.set(at, null))); // not the caller's input
            }
        }
        if (!hasHead(chunk)) return x;
        needs(headParameters());
        saved.add(x);
        Tensor xn = norm.forward(x);
        saved.add(xn);
        return output.forward(xn);
    }

    /**
     * Generation: logits (B*T,Vp) of T new tokens ids (B,T) that follow the cache's positions, whose keys and values
     * the cache takes. The whole model only; nothing is kept for backward.
     */
    public Tensor forwardCached(Tensor ids, int b, int t, KvCache cache) {
        if (!stage.whole(cfg.nLayers()))
            throw new IllegalStateException("generation runs on the whole model, not on a pipeline stage");
        int at = cache.length();
        if (at + t > cache.capacity())
            throw new IllegalArgumentException("positions " + at + ".." + (at + t) + " exceed the KV cache's " + cache.capacity());
        try (SequenceLayout.Scope whole = sequence.wholeRows()) {
            return forwardCached(ids, b, t, cache, at);
        }
    }

    private Tensor forwardCached(Tensor ids, int b, int t, KvCache cache, int at) {
        needs(embeddingWeights());
        Tensor x = tokEmbeddings.forward(ids.view(b * t));                         // (B*T,C)
        if (posEmbeddings != null) {
            int[] pos = new int[b * t];
            for (int i = 0; i < pos.length; i++) pos[i] = at + i % t;
            try (Tensor p = backend.fromInts(pos, b * t); Tensor pe = posEmbeddings.forward(p)) {
                backend.addInPlace(x, pe);
            }
        }
        try (Rope positions = cfg.family() == ModelConfig.Family.GPT2 ? null
                : Rope.of(backend, precision.params(), at, t, cfg.headDim(), cfg.ropeTheta())) {
            for (int i = 0; i < layers.size(); i++) {
                needs(layers.get(i).parameters());
                Tensor next = layers.get(i).forwardCached(x, b, t, cache.keys(i), cache.values(i), at, positions);
                x.close();
                x = next;
            }
        }
        needs(headParameters());
        try (Tensor h = x; Tensor xn = norm.forward(h)) {
            Tensor mine = output.forward(xn), logits = vocabulary.wholeLogits(mine); // (B*T,Vp)
            if (mine != logits) mine.close();
            discardSaved();
            cache.advance(t);
            return logits;
        }
    }

    /** A cache for {@link #forwardCached} of b rows and capacity positions, with this rank's key/value heads. */
    public KvCache kvCache(int b, int capacity) {
        return new KvCache(backend, precision.activations(), cfg, layers.isEmpty() ? cfg.nKvHeads() : layers.get(0).kvHeads(), b, capacity);
    }

    /** dout: dlogits (B*T,Vp), zero past V, or dhidden (B*T,C). Returns dhidden of the input, or null when the embedding took it. */
    public Tensor backward(Tensor dout) { return backward(onlyChunk(), dout); }

    @Override public Tensor backward(int chunk, Tensor dout) {
        Saved kept = Activations.current().take(this);
        List<Tensor> saved = kept.hidden();
        Tensor dx = dout;
        if (hasHead(chunk)) {
            try (Tensor dxn = output.backward(dout)) {
                dx = norm.backward(dxn, null);
            }
            if (gradientsDone != null) {
                List<Parameter> head = new ArrayList<>(norm.parameters());
                for (Parameter p : output.parameters()) if (tokEmbeddings == null || p != tokEmbeddings.weight()) head.add(p);
                gradientsDone.accept(head);
            }
        }
        List<ActivationOffload.Stashed> onHost = kept.onHost();
        for (int i = chunkStart[chunk + 1] - 1; i >= chunkStart[chunk]; i--) {
            int at = i - chunkStart[chunk]; // in saved
            if (onHost.get(at) != null) saved.set(at, activationOffload.restore(onHost.set(at, null)));
            if (at > 0 && onHost.get(at - 1) != null) activationOffload.prefetch(onHost.get(at - 1)); // up while this block runs
            if (checkpointing.recomputes(layerIndex[i])) layers.get(i).forward(saved.get(at), kept.b(), kept.t()).close();
            Tensor dPrev = layers.get(i).backward(dx);
            if (dx != dout) dx.close();
            dx = dPrev;
            if (gradientsDone != null) gradientsDone.accept(layers.get(i).parameters());
        }
        closeHidden(chunk, kept);
        if (!embeds(chunk)) return dx;
        Tensor whole = sequence.unshard(dx); // (B*T,C)
        if (whole != dx) {
            if (dx != dout) dx.close();
            dx = whole;
        }
        tokEmbeddings.backward(dx);
        if (posEmbeddings != null) posEmbeddings.backward(dx);
        if (gradientsDone != null) gradientsDone.accept(embeddingWeights());
        if (dx != dout) dx.close();
        return null;
    }

    /**
     * The examples packed into the rows of the batches that follow (null: one a row): attention stays within each,
     * positions restart at each. The caller owns them and keeps them open until those batches' backward is done.
     */
    public void documents(Documents documents) {
        this.documents = documents;
        for (Block layer : layers) layer.documents(documents);
    }

    /** The RoPE tables of every position (null for GPT-2), which packed documents gather their rows from. */
    Rope rope() { return rope; }

    /** Position ids 0..T-1 for each of B rows, made once per shape: a step uploads nothing it can keep. */
    private Tensor positions(int b, int t) {
        if (positions == null || positions.numel() != (long) b * t || positionsSeq != t) {
            if (positions != null) positions.close();
            positionsSeq = t;
            int[] pos = new int[b * t];
            for (int i = 0; i < pos.length; i++) pos[i] = i % t;
            positions = backend.fromInts(pos, b * t);
        }
        return positions;
    }

    /** Summed next-token loss over the targets that count (target >= 0) and how many there were. */
    public record LossSum(double sum, long count) {
        public double mean() { return sum / Math.max(1, count); }
    }

    /**
     * One micro-batch through the whole model: forward, fused cross-entropy, backward. Gradients of
     * gradScale * (summed loss) are added into the parameters' grads. ids, targets (B,T) int32.
     */
    public LossSum forwardBackward(Tensor ids, Tensor targets, int b, int t, double gradScale) {
        try (Tensor lossSum = backend.zeros(precision.params(), 1)) {
            forwardBackward(ids, targets, b, t, gradScale, lossSum);
            return new LossSum(backend.toDoubles(lossSum)[0], countTargets(targets));
        }
    }

    /**
     * As above, adding the summed loss into {@code lossSum} (one element, the parameters' dtype) on the device
     * instead of reading it back, so a step waits for nothing and can be captured.
     */
    public void forwardBackward(Tensor ids, Tensor targets, int b, int t, double gradScale, Tensor lossSum) {
        try (Tensor dlogits = forwardStage(onlyChunk(), ids, targets, b, t, gradScale, lossSum, true)) { // (B*T,Vp)
            backward(0, dlogits);
        }
    }

    @Override public Tensor forwardStage(int chunk, Tensor input, Tensor targets, int b, int t, double gradScale, Tensor lossSum, boolean training) {
        Tensor out = forward(chunk, input, b, t);
        if (!training) discardSaved(chunk);
        if (!hasHead(chunk)) return out;
        try (Tensor losses = vocabulary.crossEntropy(out, cfg.vocabSize(), targets, training ? out : null, gradScale)) {
            backend.sumRowsAccumulate(losses.view(b * t, 1), lossSum);
        }
        if (training) return out; // the logits now hold dlogits
        out.close();
        return null;
    }

    /** Forward only, for evaluation. */
    public LossSum loss(Tensor ids, Tensor targets, int b, int t) {
        try (Tensor logits = forward(ids, b, t); Tensor losses = vocabulary.crossEntropy(logits, cfg.vocabSize(), targets, null, 0)) {
            discardSaved();
            return sum(losses, targets);
        }
    }

    private LossSum sum(Tensor losses, Tensor targets) {
        double total = 0;
        for (double l : backend.toDoubles(losses)) total += l;
        return new LossSum(total, countTargets(targets));
    }

    private long countTargets(Tensor targets) {
        long count = 0;
        for (int target : backend.toInts(targets)) if (target >= 0) count++;
        return count;
    }

    /** Drops what a forward kept for backward (evaluation and generation run forward only). */
    public void discardSaved() { discardSaved(onlyChunk()); }

    private void discardSaved(int chunk) {
        for (int i = chunkStart[chunk]; i < chunkStart[chunk + 1]; i++) layers.get(i).discard();
        if (hasHead(chunk)) {
            output.discard();
            norm.discard();
        }
        if (embeds(chunk)) {
            tokEmbeddings.discard();
            if (posEmbeddings != null) posEmbeddings.discard();
        }
        Saved kept = Activations.current().take(this);
        if (kept != null) closeHidden(chunk, kept);
    }

    /** The first hidden state is the chunk's input when it does not embed: the caller owns it. Those on the host go back to its pool. */
    private void closeHidden(int chunk, Saved kept) {
        for (int i = embeds(chunk) ? 0 : 1; i < kept.hidden().size(); i++) {
            ActivationOffload.Stashed s = i < kept.onHost().size() ? kept.onHost().get(i) : null; // the head's are never on the host
            if (s != null) activationOffload.drop(s);
            else kept.hidden().get(i).close();
        }
    }

    /**
     * The rows of a tensor of this shape here that hold real tokens, and all that checkpoints and Hugging Face
     * directories hold of it: V of the Vp rows of a matrix of the embedding or the LM head (their weights, a LoRA
     * adapter's B on the head, their gradients and optimizer state: "tok_embeddings.weight",
     * "exp_avg.output.lora_b", ...), all rows of anything else.
     */
    public int storedRows(String tensorName, int[] shape) {
        String path = "." + tensorName;
        boolean vocabulary = shape.length == 2 && (path.contains(".tok_embeddings.") || path.contains(".output."));
        return vocabulary && shape[0] == cfg.paddedVocabSize() ? cfg.vocabSize() : shape[0];
    }

    /** Every parameter once, in a stable order; a tied head shares the embedding's. */
    public Map<String, Parameter> parameters() {
        Map<String, Parameter> ps = new LinkedHashMap<>();
        if (tokEmbeddings != null) ps.put(tokEmbeddings.weight().name(), tokEmbeddings.weight());
        if (posEmbeddings != null) ps.put(posEmbeddings.weight().name(), posEmbeddings.weight());
        for (Block layer : layers) for (Parameter p : layer.parameters()) ps.put(p.name(), p);
        if (norm != null) for (Parameter p : norm.parameters()) ps.put(p.name(), p);
        if (output != null) for (Parameter p : output.parameters()) ps.putIfAbsent(p.name(), p);
        return ps;
    }

    /** Ends an optimizer step in every linear layer (before the update: see {@link Linear#endStep}). */
    public void endStep() { linearsByName.values().forEach(Linear::endStep); }

    public void zeroGrad() {
        for (Parameter p : parameters().values()) p.zeroGrad();
    }
}
