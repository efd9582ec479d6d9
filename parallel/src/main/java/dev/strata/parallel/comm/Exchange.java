package dev.strata.parallel.comm;

/**
 * How the ranks of a {@link HostCommunicator} group hand each other their values: the n-th collective of every
 * rank meets the others' n-th, and point-to-point messages queue per (sender, receiver). An exchange is also its
 * group's watchdog: whatever does not complete within its timeout fails with the operation, its size and the ranks
 * that did not arrive.
 */
interface Exchange {
    String name();

    int size();

    /** Contributes rank's values to collective seq and waits for everyone's; returns them all, in rank order. */
    double[][] meet(long seq, int rank, String what, double[] values);

    /** Called by each rank once it has taken its result of collective seq. */
    void leave(long seq);

    void post(int from, int to, double[] values);

    /** The next message from {@code from} to {@code to}, of {@code expected} elements. */
    double[] take(int from, int to, long expected, String what);

    /** The rank's communicator closed. */
    default void close(int rank) {}
}
