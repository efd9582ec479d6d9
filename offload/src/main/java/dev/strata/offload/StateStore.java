package dev.strata.offload;

/** Where each subgroup's optimizer state lives between steps, handed out as host buffers while it is updated. */
interface StateStore extends AutoCloseable {
    /** Where the state lives, for the run's log. */
    String describe();

    /** Subgroup k's state in host memory, loaded (waiting for a read ahead when the tier reads). */
    StateBlock open(Subgroup k);

    /** Reads ahead the subgroup that comes next, where the tier reads at all. */
    default void prefetch(Subgroup next) {}

    /** Subgroup k's update is done with its block: written back where the tier writes (behind, in the background). */
    default void done(Subgroup k) {}

    /** Waits for every write behind, so the state is whole where it lives. */
    default void flush() {}

    @Override void close();
}
