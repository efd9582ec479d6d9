package dev.strata.runtime;

import java.util.Arrays;

/**
 * A dense, row-major, contiguous tensor. The memory behind it belongs to a {@link Backend}; model code never touches
 * elements directly, it only passes tensors to backend ops. Closing a tensor frees its memory now instead of at GC;
 * views made by {@link #view} share the memory and do not free it.
 */
public final class Tensor implements AutoCloseable {
    private final int[] shape;
    private final DType dtype;
    private final Backend backend;
    private final Object storage;
    private final boolean owner;
    private boolean closed;

    /** Backends call this; everyone else gets tensors from a backend. */
    public Tensor(Backend backend, Object storage, DType dtype, int[] shape, boolean owner) {
        this.backend = backend;
        this.storage = storage;
        this.dtype = dtype;
        this.shape = shape.clone();
        this.owner = owner;
        for (int s : shape) if (s < 0) throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
    }

    public int[] shape() { return shape.clone(); }

    public int rank() { return shape.length; }

    public int size(int dim) { return shape[dim < 0 ? shape.length + dim : dim]; }

    public long numel() { return numel(shape); }

    public DType dtype() { return dtype; }

    public Backend backend() { return backend; }

    public Device device() { return backend.device(); }

    /** The backend's handle to the memory; only the backend that made this tensor may interpret it. */
    public Object storage() {
        if (closed) throw new IllegalStateException("tensor " + this + " was closed");
        return storage;
    }

    /** Same memory, another shape with the same number of elements. */
    public Tensor view(int... newShape) {
        return new Tensor(backend, storage(), dtype, checkSameNumel(newShape), false);
    }

    /** Same memory, another shape; the result takes over ownership and this tensor may no longer be used. */
    public Tensor reshape(int... newShape) {
        Tensor t = new Tensor(backend, storage(), dtype, checkSameNumel(newShape), owner);
        closed = true;
        return t;
    }

    private int[] checkSameNumel(int[] newShape) {
        if (numel(newShape) != numel())
            throw new IllegalArgumentException("cannot reshape " + Arrays.toString(shape) + " to " + Arrays.toString(newShape));
        return newShape;
    }

    public boolean isClosed() { return closed; }

    @Override public void close() {
        if (closed) return;
        if (owner) backend.free(this);
        closed = true;
    }

    @Override public String toString() { return dtype.configName() + Arrays.toString(shape) + "@" + device(); }

    public static long numel(int[] shape) {
        long n = 1;
        for (int s : shape) n *= s;
        return n;
    }
}
