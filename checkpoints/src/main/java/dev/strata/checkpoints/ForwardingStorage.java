package dev.strata.checkpoints;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.util.List;

/** A storage that does what another does, to override one operation of (a write that stalls or fails, a full disk). */
public class ForwardingStorage implements Storage {
    private final Storage to;

    public ForwardingStorage(Storage to) { this.to = to; }

    @Override public OutputStream create(String path) throws IOException { return to.create(path); }
    @Override public ByteBuffer read(String path, long offset, int length) throws IOException { return to.read(path, offset, length); }
    @Override public long size(String path) throws IOException { return to.size(path); }
    @Override public long freeBytes(String path) throws IOException { return to.freeBytes(path); }
    @Override public boolean exists(String path) throws IOException { return to.exists(path); }
    @Override public void mkdirs(String path) throws IOException { to.mkdirs(path); }
    @Override public void rename(String from, String to) throws IOException { this.to.rename(from, to); }
    @Override public void replace(String from, String to) throws IOException { this.to.replace(from, to); }
    @Override public void delete(String path) throws IOException { to.delete(path); }
    @Override public List<String> list(String dir) throws IOException { return to.list(dir); }
    @Override public String resolve(String parent, String child) { return to.resolve(parent, child); }
}
