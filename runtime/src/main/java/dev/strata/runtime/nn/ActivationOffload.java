package dev.strata.runtime.nn;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

/**
 * Saved activations kept in page-locked host memory between forward and backward (offload.activations): a
 * recomputed block's input goes down on the copy stream once forward has read it, and its device memory is freed
 * when the next one goes (the compute stream waiting for the copy then, which has long landed); in backward it comes
 * back up one block ahead of the recomputation that reads it. Host buffers are pooled by size across micro-batches.
 */
public final class ActivationOffload implements AutoCloseable {
    /** One activation on the host: its buffer, and while it moves, the device tensor and the copy's event. */
    public static final class Stashed {
        private final int[] shape;
        private final DType dtype;
        private final Backend.HostBuffer host;
        private Tensor device;
        private Backend.Event copy = Backend.DONE;

        private Stashed(int[] shape, DType dtype, Backend.HostBuffer host) {
            this.shape = shape;
            this.dtype = dtype;
            this.host = host;
        }
    }

    private final Backend backend;
    private final List<Backend.HostBuffer> free = new ArrayList<>();
    private final List<Backend.HostBuffer> all = new ArrayList<>();
    private final ArrayDeque<Stashed> goingDown = new ArrayDeque<>();

    public ActivationOffload(Backend backend) { this.backend = backend; }

    /** Sends t to the host once the compute stream's work so far (forward's reads of t) is done; t is this object's now. */
    public Stashed stash(Tensor t) {
        releaseLanded();
        long bytes = t.numel() * t.dtype().byteSize();
        Stashed s = new Stashed(t.shape(), t.dtype(), buffer(bytes));
        s.device = t;
        s.copy = backend.copyToHost(t, s.host);
        goingDown.add(s);
        return s;
    }

    /** Starts bringing s back up, behind the compute stream's work so far. */
    public void prefetch(Stashed s) {
        releaseLanded();
        if (s.device != null) return;
        s.device = backend.empty(s.dtype, s.shape);
        s.copy = backend.copyFromHost(s.host, s.device);
    }

    /** s on the device again (the compute stream waits for its copy): the caller owns the tensor; the host buffer goes back to the pool. */
    public Tensor restore(Stashed s) {
        prefetch(s);
        backend.waitFor(s.copy);
        s.copy.close();
        s.copy = Backend.DONE;
        free.add(s.host);
        Tensor t = s.device;
        s.device = null;
        return t;
    }

    /** s will not be needed (a forward without backward): its memory goes back. */
    public void drop(Stashed s) {
        releaseLanded();
        if (s.device != null) {
            backend.waitFor(s.copy); // a copy up or down may still read or write it
            s.device.close();
            s.device = null;
        }
        s.copy.close();
        s.copy = Backend.DONE;
        free.add(s.host);
    }

    /** The device copies of activations now on the host are freed, the compute stream waiting for their copies first. */
    private void releaseLanded() {
        while (!goingDown.isEmpty()) {
            Stashed s = goingDown.poll();
            if (s.device == null) continue; // dropped
            backend.waitFor(s.copy);
            s.copy.close();
            s.copy = Backend.DONE;
            s.device.close();
            s.device = null;
        }
    }

    private Backend.HostBuffer buffer(long bytes) {
        for (int i = 0; i < free.size(); i++)
            if (free.get(i).bytes().capacity() == bytes) return free.remove(i);
        Backend.HostBuffer b = backend.hostBuffer(bytes);
        all.add(b);
        return b;
    }

    @Override public void close() {
        releaseLanded();
        backend.synchronize();
        all.forEach(Backend.HostBuffer::close);
    }
}
