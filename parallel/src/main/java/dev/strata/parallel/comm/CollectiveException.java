package dev.strata.parallel.comm;

/** A collective that failed or did not complete in time; the message names the group, the operation and who was missing. */
public final class CollectiveException extends IllegalStateException {
    public CollectiveException(String message) { super(message); }

    public CollectiveException(String message, Throwable cause) { super(message, cause); }

    static CollectiveException neverSent(String group, int to, int from, String what, String waited, String lastCalls) {
        return new CollectiveException(group + ": rank " + to + " waited " + waited + " for " + what + ", which rank " + from
                + " never sent; last calls: " + lastCalls);
    }

    static CollectiveException wrongLength(String group, int to, int from, String what, long expected, int got) {
        return new CollectiveException(group + ": rank " + to + " expected " + expected + " elements in " + what + ", rank " + from + " sent " + got);
    }

    static CollectiveException interrupted(String group, int rank, String what) {
        Thread.currentThread().interrupt();
        return new CollectiveException(group + ": rank " + rank + " was interrupted in " + what);
    }
}
