package dev.strata.parallel.comm;

/** A collective that failed or did not complete in time; the message names the group, the operation and who was missing. */
public final class CollectiveException extends IllegalStateException {
    public CollectiveException(String message) { super(message); }

    public CollectiveException(String message, Throwable cause) { super(message, cause); }
}
