package dev.strata.runtime;

import java.util.List;

/**
 * Every op the transformer needs, forward and backward side by side. Activations may be lower precision (bf16) than
 * parameters (f32): ops take activations of one dtype and f32 weights, biases and tables, and matmul may write f32
 * (weight gradients) from bf16 operands. Dimensions: N rows (tokens), C channels,
 * V vocabulary, B batch, T sequence, H heads (Hkv key/value heads), D head size. Ops that produce a result allocate
 * it; ops whose name ends in "Accumulate" or that take a gradient buffer add into it, so gradient accumulation and
 * tied weights need no extra copies. Reductions (norm statistics, softmax, loss) run in at least F32.
 */
public interface Backend extends AutoCloseable {

    Device device();

    // ---- memory -------------------------------------------------------------------------------------------------

    Tensor zeros(DType dtype, int... shape);

    /** A tensor whose contents are undefined: for outputs that an op writes in full (a GEMM with beta = 0). */
    Tensor empty(DType dtype, int... shape);

    /** A tensor of the given dtype holding {@code data} (row-major), rounded to the dtype. */
    Tensor fromDoubles(double[] data, DType dtype, int... shape);

    Tensor fromInts(int[] data, int... shape);

    double[] toDoubles(Tensor t);

    /**
     * A tensor from raw little-endian bytes in its own dtype (a {@link HostTensor}'s layout), moved as they are: a
     * checkpoint's tensors cost their own size on the way, not 8 bytes an element. data is read from its position.
     */
    default Tensor fromBytes(java.nio.ByteBuffer data, DType dtype, int... shape) {
        return fromDoubles(new HostTensor(dtype, shape, data).toDoubles(), dtype, shape);
    }

    /** The tensor's raw little-endian bytes in its own dtype. */
    default java.nio.ByteBuffer toBytes(Tensor t) { return HostTensor.ofDoubles(toDoubles(t), t.dtype(), t.shape()).data(); }

    int[] toInts(Tensor t);

    Tensor copy(Tensor src);

    /** Copies {@code src} into {@code dst}, converting the dtype if they differ. */
    void copyInto(Tensor src, Tensor dst);

    /**
     * Copies n elements of src, from element srcAt, into dst from element dstAt (one dtype, no conversion): how
     * gradients are packed into one flat bucket for a collective and unpacked after.
     */
    void copyElements(Tensor src, long srcAt, Tensor dst, long dstAt, long n);

    /** For {@link #copyElements}: both ranges lie inside their tensors, which share a dtype. */
    static void requireRange(Tensor src, long srcAt, Tensor dst, long dstAt, long n) {
        if (src.dtype() != dst.dtype() || n < 0 || srcAt < 0 || dstAt < 0 || srcAt + n > src.numel() || dstAt + n > dst.numel())
            throw new IllegalArgumentException("cannot copy " + n + " elements from " + src + " at " + srcAt + " to " + dst + " at " + dstAt);
    }

    void zero(Tensor t);

    /** Called by {@link Tensor#close()} on the owner; frees the memory behind it. */
    void free(Tensor t);

    // ---- dense algebra ------------------------------------------------------------------------------------------

    /** c = alpha * op(a) @ op(b) + beta * c, all 2-D; op transposes when asked; c is a's dtype or f32. */
    void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor c, double alpha, double beta);

    /**
     * A linear layer's forward: c (m,n) = op(a)·op(b) + beta·c + bias, bias (n) in c's dtype added to every row. The
     * CUDA backend adds it in the GEMM's epilogue, as the product is stored, instead of in a pass of its own.
     */
    default void matmulBias(Tensor a, boolean transA, Tensor b, boolean transB, Tensor c, double beta, Tensor bias) {
        matmul(a, transA, b, transB, c, 1, beta);
        addBias(c, bias);
    }

    /** x (N,C) += bias (C), in place. */
    void addBias(Tensor x, Tensor bias);

    /** dbias (C) += column sums of dy (N,C). */
    void sumRowsAccumulate(Tensor dy, Tensor dbias);

    Tensor add(Tensor a, Tensor b);

    /** acc += x. */
    void addInPlace(Tensor acc, Tensor x);

    /** t *= s. */
    void scale(Tensor t, double s);

    /**
     * Sum of squares of every element of every tensor into {@code out} (F64, one element), in a fixed order and
     * without waiting for the device, so the global gradient norm can be part of a captured step.
     */
    void sumOfSquares(List<Tensor> tensors, Tensor out);

    /** {@link #sumOfSquares(List, Tensor)} read back to the host. */
    default double sumOfSquares(List<Tensor> tensors) {
        try (Tensor out = zeros(DType.F64, 1)) {
            sumOfSquares(tensors, out);
            return toDoubles(out)[0];
        }
    }

    // ---- embedding ----------------------------------------------------------------------------------------------

    /** ids (N) int32, table (V,C) -> rows (N,C) in dtype {@code out} (bf16 activations from an f32 table). */
    default Tensor embeddingForward(Tensor ids, Tensor table, DType out) { return embeddingForward(ids, table, out, 0); }

    /** dtable (V,C) += scatter of dout (N,C) by ids (N). */
    default void embeddingBackward(Tensor ids, Tensor dout, Tensor dtable) { embeddingBackward(ids, dout, dtable, 0); }

    /**
     * A shard of a table (vocabulary parallelism): table (R,C) holds rows [firstRow, firstRow + R) of the whole;
     * ids outside them give zero rows, so the shards' results sum to the whole lookup.
     */
    Tensor embeddingForward(Tensor ids, Tensor table, DType out, int firstRow);

    /** dtable (R,C) += the rows of dout whose ids lie in [firstRow, firstRow + R); the others belong to other shards. */
    void embeddingBackward(Tensor ids, Tensor dout, Tensor dtable, int firstRow);

    // ---- normalisation ------------------------------------------------------------------------------------------

    /** Output of a normalisation forward: out like x, and per-row statistics kept for backward. */
    record NormOutput(Tensor out, Tensor mean, Tensor rstd) {}

    /** LayerNorm over the last dim: x (N,C), weight, bias (C) -> out (N,C), mean (N), rstd (N) in F32/F64. */
    NormOutput layerNormForward(Tensor x, Tensor weight, Tensor bias, double eps);

    /**
     * Returns dx (N,C), plus residual (N,C) unless null: the gradient a skip connection around the norm adds, in the
     * same pass. dweight and dbias (C) accumulate, each unless null (a frozen parameter).
     */
    Tensor layerNormBackward(Tensor dout, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dweight, Tensor dbias, Tensor residual);

    /** RMSNorm: x (N,C), weight (C) -> out (N,C), rstd (N); mean is null. */
    NormOutput rmsNormForward(Tensor x, Tensor weight, double eps);

    /** Returns dx (N,C), plus residual unless null, as {@link #layerNormBackward}; dweight (C) accumulates unless null. */
    Tensor rmsNormBackward(Tensor dout, Tensor x, Tensor weight, Tensor rstd, Tensor dweight, Tensor residual);

    // ---- activations --------------------------------------------------------------------------------------------

    /** GELU, tanh approximation (GPT-2's "gelu_new"). */
    Tensor geluForward(Tensor x);

    Tensor geluBackward(Tensor dout, Tensor x);

    /** silu(gate) * up, both (N,F). */
    Tensor swigluForward(Tensor gate, Tensor up);

    /** Returns {dgate, dup}. */
    Tensor[] swigluBackward(Tensor dout, Tensor gate, Tensor up);

    // ---- attention ----------------------------------------------------------------------------------------------

    /**
     * Rotary position embedding on x (B,T,H,D) with the half-split pairing (i, i + D/2) that Hugging Face Llama uses;
     * cos and sin are (T, D/2). Backward is the same op with sin negated.
     */
    Tensor rope(Tensor x, Tensor cos, Tensor sin, boolean inverse);

    /** Output of attention forward: out (B,T,H,D) and the log-sum-exp of each score row (B,H,T) for backward. */
    record AttentionOutput(Tensor out, Tensor lse) {}

    /**
     * Causal scaled-dot-product attention. q (B,T,H,D); k, v (B,T,Hkv,D) with H a multiple of Hkv (grouped-query:
     * query head h reads key/value head h / (H/Hkv)). starts (B,T) int32, or null for one document a row: where
     * each position's document begins in its row, so a query sees the keys from there to itself (packed examples
     * never attend across their boundaries).
     */
    AttentionOutput attentionForward(Tensor q, Tensor k, Tensor v, double scale, Tensor starts);

    default AttentionOutput attentionForward(Tensor q, Tensor k, Tensor v, double scale) { return attentionForward(q, k, v, scale, null); }

    /** Returns {dq, dk, dv} shaped like q, k, v; starts as the forward's. */
    Tensor[] attentionBackward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, double scale, Tensor starts);

    default Tensor[] attentionBackward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, double scale) {
        return attentionBackward(dout, q, k, v, out, lse, scale, null);
    }

    /**
     * Causal attention of new queries q (B,Tq,H,D) over the first {@code length} positions of key and value caches
     * k, v (B,Tmax,Hkv,D), for generation: query i sits at position length - Tq + i and sees the keys up to it.
     */
    Tensor attentionCached(Tensor q, Tensor k, Tensor v, int length, double scale);

    /** Writes src (B,T,...) into positions [at, at + T) of dimension 1 of dst (B,Tmax,...), as a KV cache takes new keys. */
    void copyIntoPositions(Tensor src, Tensor dst, int at);

    // ---- loss ---------------------------------------------------------------------------------------------------

    /**
     * Fused softmax cross-entropy over the first {@code classes} columns of logits (N,W); the columns past them are
     * padding (a vocabulary padded for aligned GEMMs), outside the softmax, with gradient 0. targets (N) int32, below
     * classes, where a negative target is ignored. Returns the per-row loss (N) in F32/F64 (0 for ignored rows). When
     * dlogits is non-null it receives gradScale * (softmax - onehot) for every row (0 for ignored rows); it may be the
     * logits tensor itself, so no second (N,W) buffer is needed.
     */
    Tensor crossEntropy(Tensor logits, int classes, Tensor targets, Tensor dlogits, double gradScale);

    /** {@link #crossEntropy(Tensor, int, Tensor, Tensor, double)} over every column of logits. */
    default Tensor crossEntropy(Tensor logits, Tensor targets, Tensor dlogits, double gradScale) {
        return crossEntropy(logits, logits.size(-1), targets, dlogits, gradScale);
    }

    /**
     * Vocabulary-parallel cross-entropy, first half: logits (N,W) are this rank's columns, of which [0, classes) are
     * the vocabulary's classes [firstClass, firstClass + classes). Returns stats (N,3) in F32/F64 per row: the max of
     * those logits, the sum of e^(x - max) over them, and the target's logit when the target is one of them (else 0).
     */
    Tensor crossEntropyStats(Tensor logits, int classes, int firstClass, Tensor targets);

    /**
     * Second half: from every rank's stats (R,N,3), in rank order, the per-row loss (N) over the whole vocabulary
     * (the same on every rank: log Σ_r s_r·e^(m_r - M) + M - Σ_r t_r, M the max of the m_r; 0 for ignored rows), and,
     * when dlogits is non-null, gradScale · (softmax - onehot) for this rank's columns (0 past classes and for
     * ignored rows); dlogits may be logits.
     */
    Tensor crossEntropyFromStats(Tensor logits, int classes, int firstClass, Tensor targets, Tensor stats, Tensor dlogits, double gradScale);

    // ---- FP8 ----------------------------------------------------------------------------------------------------

    /**
     * An FP8 GEMM operand: codes (rows, K) with the contracted dimension contiguous, and the f32 scales that decode
     * them, one for the tensor ([1]) or one per row ([rows]: per-token or per-channel scaling). Codes and scales are
     * all a receiver needs, so an operand can travel over a collective as it is.
     */
    record Fp8Operand(Tensor data, Tensor scaleInv) implements AutoCloseable {
        public Fp8Operand {
            long scales = scaleInv.numel(), rows = data.size(0);
            if (scales != 1 && scales != rows)
                throw new IllegalArgumentException("an FP8 operand holds one scale or one per row (" + rows + "), not " + scaleInv);
        }

        /** Whether the operand holds one scale per row of its data rather than one for the whole tensor. */
        public boolean perRow() { return scaleInv.numel() > 1; }

        @Override public void close() {
            data.close();
            scaleInv.close();
        }
    }

    /**
     * Quantizes x (R,C) into {@code out} for an FP8 GEMM contracting over C, or over R with {@code transpose} (out is
     * then (C,R): cuBLASLt's FP8 kernels read K contiguous). With hadamardBlock > 1 the contracted dimension is first
     * rotated by the normalised block-diagonal Walsh–Hadamard matrix with blocks of that size (a power of two that
     * divides it). out's data dtype is the format: FP8_E4M3 or FP8_E5M2, scaled per tensor so that an amax maps to
     * the format's max, with the decoding scale written to out's scaleInv; or x's own dtype, to rotate (and
     * transpose) without quantizing.
     *
     * <p>The amax is the rotated tensor's own (current scaling: one pass over x more), or with {@code fromHistory}
     * the largest of {@code amaxHistory[1..H)}, the amaxes of earlier steps (delayed scaling). amaxHistory (F32 [H])
     * may be null; otherwise this tensor's amax is also recorded into its slot 0 (as a max with what is there).
     * When out's scaleInv has one entry per row of out's data, each row is scaled by its own (rotated) amax instead,
     * always current.
     */
    void quantizeFp8(Tensor x, boolean transpose, int hadamardBlock, Fp8Operand out, Tensor amaxHistory, boolean fromHistory);

    /** Current scaling, nothing recorded. */
    default void quantizeFp8(Tensor x, boolean transpose, int hadamardBlock, Fp8Operand out) {
        quantizeFp8(x, transpose, hadamardBlock, out, null, false);
    }

    /** {@link #quantizeFp8(Tensor, boolean, int, Fp8Operand, Tensor, boolean)} into a new operand of the given format. */
    default Fp8Operand quantizeFp8(Tensor x, DType format, boolean transpose, int hadamardBlock, Tensor amaxHistory, boolean fromHistory) {
        if (x.rank() != 2) throw new IllegalArgumentException("quantizeFp8 takes a 2-D tensor, got " + x);
        Fp8Operand out = new Fp8Operand(empty(format, x.size(transpose ? 1 : 0), x.size(transpose ? 0 : 1)), empty(DType.F32, 1));
        quantizeFp8(x, transpose, hadamardBlock, out, amaxHistory, fromHistory);
        return out;
    }

    default Fp8Operand quantizeFp8(Tensor x, DType format, boolean transpose, int hadamardBlock) {
        return quantizeFp8(x, format, transpose, hadamardBlock, null, false);
    }

    /** One operand to make from a tensor: where it goes, its Hadamard block (0: none) and its scaling, as in quantizeFp8. */
    record Fp8Target(Fp8Operand out, int hadamardBlock, Tensor amaxHistory, boolean fromHistory) {
        public Fp8Target(Fp8Operand out, int hadamardBlock) { this(out, hadamardBlock, null, false); }
    }

    /**
     * Both operands x (R,C) feeds in a linear layer: {@code rows} for a GEMM contracting over C and {@code cols} (C,R)
     * for one contracting over R, each exactly as {@link #quantizeFp8(Tensor, boolean, int, Fp8Operand, Tensor,
     * boolean)} makes it. The CUDA backend reads x once for both (twice under current scaling).
     */
    default void quantizeFp8Both(Tensor x, Fp8Target rows, Fp8Target cols) {
        quantizeFp8(x, false, rows.hadamardBlock(), rows.out(), rows.amaxHistory(), rows.fromHistory());
        quantizeFp8(x, true, cols.hadamardBlock(), cols.out(), cols.amaxHistory(), cols.fromHistory());
    }

    /** Starts a new step in each amax history: every entry moves one slot back, the oldest drops, slot 0 is 0. */
    void rollAmaxHistories(List<Tensor> histories);

    /**
     * c (M,N) = sa·sb · a (M,K)·b (N,K)ᵀ + beta·c, where sa, sb are the operands' scaleInv (per tensor, or per row:
     * c[i][j] takes sa[i]·sb[j]): a GEMM on FP8 codes (E4M3 or E5M2, not both E5M2) with f32 accumulation, or on
     * unquantized operands of one dtype; c is bf16 or f32.
     */
    void matmulFp8(Fp8Operand a, Fp8Operand b, Tensor c, double beta);

    // ---- optimizer ----------------------------------------------------------------------------------------------

    /**
     * One parameter of a multi-tensor AdamW update: its value, gradient and moments, weight decay, and the copy of
     * the value that GEMMs read in a lower precision, written with the update (null: none). The moments are the
     * value's number of elements from element stateAt of m and v, which may be larger (an offloaded optimizer's
     * window that several parameters' moments pass through).
     */
    record AdamWSlot(Tensor param, Tensor grad, Tensor m, Tensor v, long stateAt, double weightDecay, Tensor copy) {
        public AdamWSlot {
            if (stateAt < 0 || stateAt + param.numel() > m.numel() || stateAt + param.numel() > v.numel())
                throw new IllegalArgumentException("the moments of " + param + " from element " + stateAt + " do not fit in " + m + ", " + v);
        }

        public AdamWSlot(Tensor param, Tensor grad, Tensor m, Tensor v, double weightDecay, Tensor copy) { this(param, grad, m, v, 0, weightDecay, copy); }

        public AdamWSlot(Tensor param, Tensor grad, Tensor m, Tensor v, double weightDecay) { this(param, grad, m, v, 0, weightDecay, null); }
    }

    /** What stays fixed from one AdamW step to the next; maxGradNorm = 0 turns clipping off. */
    record AdamWSettings(double beta1, double beta2, double eps, double maxGradNorm) {}

    /**
     * PyTorch's AdamW over every slot (one launch on the GPU): param *= 1 - lr*wd; m = b1*m + (1-b1)*g;
     * v = b2*v + (1-b2)*g^2; param -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). What changes every step is
     * read from device tensors, so a captured step replays with new values: {@code schedule} (F64 [3]) holds lr,
     * 1-b1^t and sqrt(1-b2^t); {@code gradSumSquares} (F64 [1]) the squared global gradient norm, and with
     * maxGradNorm > 0 every grad is scaled by min(1, maxGradNorm / (norm + 1e-6)) first, as
     * {@code torch.nn.utils.clip_grad_norm_} does. A non-finite norm (an inf or NaN gradient) skips the update: no
     * parameter or moment changes.
     */
    void adamw(List<AdamWSlot> slots, AdamWSettings settings, Tensor schedule, Tensor gradSumSquares);

    // ---- graphs -------------------------------------------------------------------------------------------------

    /** Ops recorded once and replayed on the same memory (a CUDA graph). */
    interface Graph extends AutoCloseable {
        void replay();

        @Override void close();
    }

    /**
     * Records the ops that {@code work} enqueues, without running them, for replay; null where ops run as they are
     * called (the CPU). work must neither wait for the device nor read results back; what it allocates comes from
     * memory set apart for graphs, so nothing outside them can take it while they live.
     */
    default Graph capture(Runnable work) { return null; }

    /** Waits until every op queued so far has finished (a no-op where ops run synchronously). */
    default void synchronize() {}

    /**
     * From now on, sums whose terms would meet in atomics (attention's dq, the embedding table's gradient) are added
     * in a fixed order: the same bits every run, at some cost in time and memory (training.deterministic). Backends
     * that always add in order ignore it.
     */
    default void deterministic(boolean on) {}

    // ---- events and asynchronous host transfers -----------------------------------------------------------------

    /** A point in a stream's queue of work: the host waits for it ({@link #await}), another stream with {@link #waitFor}. */
    interface Event extends AutoCloseable {
        void await();

        boolean done();

        @Override default void close() {}
    }

    /** What ops that ran as they were called hand back. */
    Event DONE = new Event() {
        @Override public void await() {}

        @Override public boolean done() { return true; }
    };

    /**
     * Host memory the device copies to and from without staging (page-locked on CUDA); little-endian bytes laid out
     * as a {@link HostTensor}'s. One buffer holds up to 2 GiB; larger state goes in several.
     */
    interface HostBuffer extends AutoCloseable {
        java.nio.ByteBuffer bytes();

        @Override void close();
    }

    /** A host buffer of {@code bytes} for {@link #copyToHost} and {@link #copyFromHost}. */
    default HostBuffer hostBuffer(long bytes) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocateDirect(Math.toIntExact(bytes)).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        return new HostBuffer() {
            @Override public java.nio.ByteBuffer bytes() { return b; }

            @Override public void close() {}
        };
    }

    /** Marks the compute stream's work so far. */
    default Event record() { return DONE; }

    /** The compute stream waits for e before anything enqueued after this call; the host does not wait. */
    default void waitFor(Event e) { e.await(); }

    /**
     * Copies t's bytes into the start of host once the compute stream's work so far is done, on a copy stream of its
     * own (one each way), so compute enqueued after it overlaps the copy; the event says when the bytes have landed. Until then t
     * must not be written nor host read, and both must live.
     */
    default Event copyToHost(Tensor t, HostBuffer host) {
        host.bytes().duplicate().clear().put(toBytes(t));
        return DONE;
    }

    /**
     * As {@link #copyToHost(Tensor, HostBuffer)}, but after {@code after} instead of the compute stream: for a caller
     * that knows nothing on the compute stream still writes t (the device idle since the host last waited for it),
     * and that host is free once {@code after} (a copy up that read it) is done. Each direction has a copy stream
     * of its own, so copies down and up overlap.
     */
    default Event copyToHostAfter(Tensor t, HostBuffer host, Event after) { return copyToHostAfter(t, t.numel(), host, after); }

    /** As {@link #copyToHostAfter(Tensor, HostBuffer, Event)}, t's first elements only. */
    default Event copyToHostAfter(Tensor t, long elements, HostBuffer host, Event after) {
        after.await();
        host.bytes().duplicate().clear().put(toBytes(t).limit(Math.toIntExact(elements * t.dtype().byteSize())));
        return DONE;
    }

    /** As {@link #copyFromHost(HostBuffer, Tensor)}, after {@code after} instead of the compute stream (see {@link #copyToHostAfter}). */
    default Event copyFromHostAfter(HostBuffer host, Tensor t, Event after) { return copyFromHostAfter(host, t, t.numel(), after); }

    /** As {@link #copyFromHostAfter(HostBuffer, Tensor, Event)}, into t's first elements only. */
    default Event copyFromHostAfter(HostBuffer host, Tensor t, long elements, Event after) {
        after.await();
        java.nio.ByteBuffer all = toBytes(t);
        all.duplicate().put(host.bytes().duplicate().clear().limit(Math.toIntExact(elements * t.dtype().byteSize())));
        try (Tensor src = fromBytes(all, t.dtype(), t.shape())) {
            copyInto(src, t);
        }
        return DONE;
    }

    /** Copies the first bytes of host into t on the copy stream; compute that reads t waits with {@link #waitFor}. */
    default Event copyFromHost(HostBuffer host, Tensor t) {
        long n = t.numel() * t.dtype().byteSize();
        try (Tensor src = fromBytes(host.bytes().duplicate().clear().limit(Math.toIntExact(n)), t.dtype(), t.shape())) {
            copyInto(src, t);
        }
        return DONE;
    }

    // ---- files straight to and from the backend's memory --------------------------------------------------------

    /**
     * Moves bytes between files and tensors in the calling thread, without the caller's staging buffers: where the
     * optimizer's state on disk goes straight to the device (cuFile's GPUDirect Storage). Reads and writes block
     * until done, so an I/O thread runs them; the tensors must not be in use by queued work meanwhile.
     */
    interface FileIo extends AutoCloseable {
        /** t's first elements, at a byte offset of a file. */
        record Part(Tensor t, long elements, long offset) {}

        /** How the bytes move, for the run's log. */
        String describe();

        /** Each part's elements from file, the file opened once. */
        void read(java.nio.file.Path file, java.util.List<Part> parts) throws java.io.IOException;

        /** Each part's elements into file (which exists), the file opened once. */
        void write(java.util.List<Part> parts, java.nio.file.Path file) throws java.io.IOException;

        @Override default void close() {}
    }

    /**
     * This backend's {@link FileIo} where it beats the caller's own staging (CUDA: cuFile where the machine has
     * GPUDirect Storage), or where asked for always (then through a host buffer here: the path the tests take); else null.
     */
    default FileIo fileIo(boolean always) { return always ? new HostFileIo(this) : null; }

    @Override default void close() {}
}
