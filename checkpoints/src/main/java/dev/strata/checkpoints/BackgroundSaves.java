package dev.strata.checkpoints;

import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Checkpoint writes of one rank, one at a time: in the background on a thread of their own (async), or at once. A
 * save waits for the one before it, whose failure it reports, so at most one snapshot is in host memory besides the
 * live state.
 */
public final class BackgroundSaves implements AutoCloseable {
    /** A finished write: the checkpoint it committed (null on ranks other than 0), its step, bytes this rank wrote, and how long it took. */
    public record Done(String dir, long step, long bytes, double seconds) {
        public double gbPerSecond() { return seconds > 0 ? bytes / seconds / 1e9 : 0; }
    }

    private final ExecutorService thread; // null: synchronous
    private Future<Done> pending;

    public BackgroundSaves(boolean async) {
        this.thread = async ? Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "checkpoint-writer");
            t.setDaemon(true); // a crash of the trainer must not wait for it; the previous checkpoint stays the latest
            return t;
        }) : null;
    }

    public boolean async() { return thread != null; }

    /** Waits for the write in flight, if any; its result, or null. A failed write is rethrown here. */
    public Done awaitPrevious() {
        if (pending == null) return null;
        try {
            return pending.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            throw new IllegalStateException("the checkpoint write failed: " + e.getCause().getMessage(), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a checkpoint write", e);
        } finally {
            pending = null;
        }
    }

    /**
     * Writes a checkpoint of step (bytes: what this rank writes) with save, which returns the committed directory or
     * null: in the background, after the previous write, or now. Returns the previous write's result (async) or this one's.
     */
    public Done submit(long step, long bytes, Callable<String> save) {
        Done previous = awaitPrevious();
        Callable<Done> timed = () -> {
            long t0 = System.nanoTime();
            String dir = save.call();
            return new Done(dir, step, bytes, (System.nanoTime() - t0) / 1e9);
        };
        if (thread != null) {
            pending = thread.submit(timed);
            return previous;
        }
        try {
            return timed.call();
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException("the checkpoint write failed: " + e.getMessage(), e);
        }
    }

    /** Waits for the last write; returns it, or null. */
    public Done finish() { return awaitPrevious(); }

    @Override public void close() {
        if (thread != null) thread.shutdownNow();
    }
}
