package dev.strata.parallel.comm;

/** A collective in flight. */
public interface Work {
    /**
     * Waits until the result may be used by what runs after (on a GPU: orders the compute stream after it, without
     * blocking the host). Throws {@link CollectiveException} when the collective failed or timed out.
     */
    void await();

    /** Whether it has finished (false while it runs; true after a failure too, which {@link #await} then throws). */
    boolean isDone();
}
