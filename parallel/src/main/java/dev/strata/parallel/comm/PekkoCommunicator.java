package dev.strata.parallel.comm;

import java.time.Duration;

/**
 * Ranks as processes (CPU), their values carried by Apache Pekko's Artery remoting: the same Pekko the cluster uses,
 * no transport of our own. Rank 0 listens at {@code host:port}; the others find it there (see {@link PekkoExchange}).
 */
public final class PekkoCommunicator {
    private PekkoCommunicator() {}

    /** This process's communicator of a group spread over processes; returns once every rank has joined (or throws after timeout). */
    public static Communicator join(String name, int rank, int size, String host, int port, Duration timeout) {
        return new HostCommunicator(new PekkoExchange(name, rank, size, host, port, timeout), rank);
    }
}
