package dev.strata.checkpoints.hdfs;

import dev.strata.checkpoints.Storage;
import java.io.FileNotFoundException;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.file.FileAlreadyExistsException;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileContext;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Options;
import org.apache.hadoop.fs.Path;

/**
 * {@link Storage} on HDFS through Hadoop's {@code FileSystem} API; paths are {@code hdfs://host:port/...} URIs.
 * A file is durable once its stream is closed (hsync first), and renames are the name node's, atomic, so commits
 * work as on local disk.
 */
public final class HdfsStorage implements Storage {
    private final FileSystem fs;
    private final FileContext context;

    /** The file system of uri (hdfs://host:port/...), with Hadoop's default settings and those of HADOOP_CONF_DIR's files. */
    public HdfsStorage(String uri) throws IOException {
        Configuration conf = new Configuration();
        this.fs = FileSystem.get(URI.create(uri), conf);
        this.context = FileContext.getFileContext(fs.getUri(), conf);
        try {
            fs.exists(new Path("/")); // the name node answers now, or the job stops here in one line
        } catch (IOException e) {
            String why = String.valueOf(e.getMessage()).split(";")[0];
            throw new IOException(uri + ": the HDFS name node at " + fs.getUri() + " does not answer (" + why + "); check checkpoint.dir and HADOOP_CONF_DIR", e);
        }
    }

    @Override public OutputStream create(String path) throws IOException {
        FSDataOutputStream file = fs.create(new Path(path), true);
        return new FilterOutputStream(file) {
            @Override public void write(byte[] b, int off, int len) throws IOException { file.write(b, off, len); }

            @Override public void close() throws IOException {
                try (file) {
                    file.hsync(); // on the datanodes' disks before the stream reports success
                }
            }
        };
    }

    @Override public ByteBuffer read(String path, long offset, int length) throws IOException {
        byte[] bytes = new byte[length];
        try (FSDataInputStream in = fs.open(new Path(path))) {
            in.readFully(offset, bytes);
        }
        return ByteBuffer.wrap(bytes);
    }

    @Override public long size(String path) throws IOException { return fs.getFileStatus(new Path(path)).getLen(); }

    /** What the datanodes have left, divided by the replication each byte takes. */
    @Override public long freeBytes(String path) throws IOException {
        Path p = new Path(path);
        return fs.getStatus(p).getRemaining() / Math.max(1, fs.getDefaultReplication(p));
    }

    @Override public boolean exists(String path) throws IOException { return fs.exists(new Path(path)); }

    @Override public void mkdirs(String path) throws IOException {
        if (!fs.mkdirs(new Path(path))) throw new IOException("cannot create the directory " + path);
    }

    @Override public void rename(String from, String to) throws IOException {
        // FileSystem.rename moves into an existing directory instead of failing: refuse that first.
        if (fs.exists(new Path(to))) throw new FileAlreadyExistsException(to);
        if (!fs.rename(new Path(from), new Path(to))) throw new IOException("HDFS refused to rename " + from + " to " + to);
    }

    @Override public void replace(String from, String to) throws IOException { context.rename(new Path(from), new Path(to), Options.Rename.OVERWRITE); }

    @Override public void delete(String path) throws IOException { fs.delete(new Path(path), true); }

    @Override public List<String> list(String dir) throws IOException {
        List<String> names = new ArrayList<>();
        try {
            for (FileStatus s : fs.listStatus(new Path(dir))) names.add(s.getPath().getName());
        } catch (FileNotFoundException e) {
            return List.of();
        }
        names.sort(null);
        return names;
    }

    @Override public String resolve(String parent, String child) { return parent.endsWith("/") ? parent + child : parent + "/" + child; }
}
