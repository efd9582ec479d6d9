package dev.strata.checkpoints.hdfs;

import dev.strata.checkpoints.ForwardingStorage;
import dev.strata.checkpoints.Storage;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;

/** A storage that runs an action once, after so many bytes were written through it (to stop a datanode, or stall). */
class StoppingStorage extends ForwardingStorage {
    private final long after;
    private final Runnable action;
    private long written;
    private boolean stopped;

    StoppingStorage(Storage to, long after, Runnable action) {
        super(to);
        this.after = after;
        this.action = action;
    }

    boolean stopped() { return stopped; }

    @Override public OutputStream create(String path) throws IOException {
        return new FilterOutputStream(super.create(path)) {
            @Override public void write(byte[] b, int off, int len) throws IOException {
                out.write(b, off, len);
                written += len;
                if (!stopped && written > after) {
                    stopped = true;
                    out.flush();
                    action.run();
                }
            }
        };
    }
}
