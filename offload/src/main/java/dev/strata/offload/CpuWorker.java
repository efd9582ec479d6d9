package dev.strata.offload;

import dev.strata.runtime.DType;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.LongConsumer;

/**
 * A daemon thread that runs the CPU's AdamW (on its pool) beside the training thread, which keeps every device call. Closing
 * waits for an update still running: a step cut short by an error may leave one writing into pinned buffers.
 */
final class CpuWorker implements AutoCloseable {
    private final ExecutorService thread;
    private final String what;
    private final CpuAdamW cpu;
    private final DType stateType;

    /** name: the thread's; what: the work, for errors ("the CPU's early AdamW"); cpu updates parts in stateType. */
    CpuWorker(String name, String what, CpuAdamW cpu, DType stateType) {
        this.what = what;
        this.cpu = cpu;
        this.stateType = stateType;
        this.thread = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, name);
            t.setDaemon(true);
            return t;
        });
    }

    /** Updates parts once the work before is done; busy then takes the nanoseconds it took. */
    Future<?> update(List<CpuAdamW.Part> parts, LongConsumer busy) {
        return thread.submit(() -> {
            long t0 = System.nanoTime();
            cpu.update(stateType, parts);
            busy.accept(System.nanoTime() - t0);
        });
    }

    /** Waits for f (a cancelled one had not started), rethrowing what it threw. */
    void join(Future<?> f) {
        try {
            f.get();
        } catch (CancellationException e) {
            // not started: nothing to wait for
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while " + what + " ran", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException(what + " failed: " + e.getCause(), e.getCause());
        }
    }

    @Override public void close() {
        thread.shutdownNow();
        try {
            thread.awaitTermination(1, TimeUnit.MINUTES);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
