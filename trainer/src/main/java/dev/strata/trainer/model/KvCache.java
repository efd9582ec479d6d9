package dev.strata.trainer.model;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;

/**
 * Keys and values of every attention layer for the positions a generation has seen, so each new token costs one
 * position's forward instead of the whole prefix's. Per layer k and v are (B,Tmax,Hkv,D), after RoPE.
 */
public final class KvCache implements AutoCloseable {
    private final Tensor[] keys, values;
    private final int capacity;
    private int length;

    public KvCache(Backend backend, DType dtype, ModelConfig cfg, int b, int capacity) { this(backend, dtype, cfg, cfg.nKvHeads(), b, capacity); }

    /** kvHeads: the key/value heads each layer computes here (a tensor-parallel rank's share). */
    public KvCache(Backend backend, DType dtype, ModelConfig cfg, int kvHeads, int b, int capacity) {
        if (capacity > cfg.maxSeqLen()) throw new IllegalArgumentException("a KV cache of " + capacity + " positions exceeds max_seq_len " + cfg.maxSeqLen());
        this.capacity = capacity;
        keys = new Tensor[cfg.nLayers()];
        values = new Tensor[cfg.nLayers()];
        for (int i = 0; i < keys.length; i++) {
            keys[i] = backend.zeros(dtype, b, capacity, kvHeads, cfg.headDim());
            values[i] = backend.zeros(dtype, b, capacity, kvHeads, cfg.headDim());
        }
    }

    /** Positions held so far. */
    public int length() { return length; }

    public int capacity() { return capacity; }

    Tensor keys(int layer) { return keys[layer]; }

    Tensor values(int layer) { return values[layer]; }

    void advance(int t) { length += t; }

    /** Forgets every position (the tensors stay allocated for the next prefill). */
    public void clear() { length = 0; }

    @Override public void close() {
        for (Tensor t : keys) t.close();
        for (Tensor t : values) t.close();
    }
}
