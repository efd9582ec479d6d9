package dev.strata.checkpoints;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * The few file-system operations checkpoints need, shaped after Hadoop's {@code FileSystem} so an HDFS implementation
 * is a thin adapter. Paths are strings in the storage's own syntax; {@link #rename} must be atomic and must fail when
 * the target exists, since commits rely on it.
 */
public interface Storage {

    /** Opens a new file for writing, creating parent directories; replaces an existing file. */
    OutputStream create(String path) throws IOException;

    /** {@code length} bytes from {@code offset}; a local storage maps them, a remote one reads them. */
    ByteBuffer read(String path, long offset, int length) throws IOException;

    long size(String path) throws IOException;

    /** Bytes that may still be written under the directory path (which exists). */
    long freeBytes(String path) throws IOException;

    boolean exists(String path) throws IOException;

    void mkdirs(String path) throws IOException;

    /** Atomically moves a file or directory; fails if {@code to} exists. */
    void rename(String from, String to) throws IOException;

    /** Atomically replaces {@code to} with the file {@code from} (for small pointer files such as {@code latest}). */
    void replace(String from, String to) throws IOException;

    /** Deletes a file or a directory tree; no error if it is absent. */
    void delete(String path) throws IOException;

    /** Names (not paths) of the entries of a directory, sorted; empty if it does not exist. */
    List<String> list(String dir) throws IOException;

    String resolve(String parent, String child);

    /**
     * The storage a path lives on: HDFS for hdfs:// URIs (Strata's HDFS support, loaded only then), else the local
     * file system.
     */
    static Storage forPath(String path) throws IOException {
        if (!path.startsWith("hdfs://")) return new LocalStorage();
        try {
            return (Storage) Class.forName("dev.strata.checkpoints.hdfs.HdfsStorage").getConstructor(String.class).newInstance(path);
        } catch (ClassNotFoundException | NoClassDefFoundError e) {
            throw new IllegalArgumentException(path + " is on HDFS, but this installation has no HDFS support: on a GPU node bundle, build it with "
                    + "strata dist --with-hdfs");
        } catch (java.lang.reflect.InvocationTargetException e) {
            if (e.getCause() instanceof IOException io) throw io;
            throw new IllegalArgumentException("cannot open " + path + ": " + e.getCause().getMessage(), e.getCause());
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
    }
}
