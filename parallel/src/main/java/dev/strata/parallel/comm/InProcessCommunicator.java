package dev.strata.parallel.comm;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/** Ranks as threads of one JVM, for tests and small CPU runs: their communicators meet in one {@link Rendezvous}. */
public final class InProcessCommunicator {
    private InProcessCommunicator() {}

    /** One communicator per rank of a new group; a collective not joined by every rank within timeout fails, naming who is missing. */
    public static List<Communicator> group(String name, int size, Duration timeout) {
        Rendezvous r = new Rendezvous(name, size, timeout);
        List<Communicator> ranks = new ArrayList<>();
        for (int i = 0; i < size; i++) ranks.add(new HostCommunicator(r, i));
        return ranks;
    }
}
