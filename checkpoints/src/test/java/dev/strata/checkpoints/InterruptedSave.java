package dev.strata.checkpoints;

import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.util.List;

/** Child process of CheckpointerTest: commits step 1, then hangs in the middle of writing step 2 until killed. */
public final class InterruptedSave {
    static final String HALF_WRITTEN = "HALF-WRITTEN";

    public static void main(String[] args) throws Exception {
        new Checkpointer(new LocalStorage(), args[0], 3).save(1, CheckpointerTest.tensors(1, 1 << 16),
                CheckpointerTest.tensors(2, 1 << 16), CheckpointerTest.state(1));
        Storage stalling = new Storage() {
            final LocalStorage local = new LocalStorage();
            long written;

            @Override public OutputStream create(String path) throws IOException {
                return new FilterOutputStream(local.create(path)) {
                    @Override public void write(byte[] b, int off, int len) throws IOException {
                        out.write(b, off, len);
                        written += len;
                        if (written > 100_000) {
                            out.flush();
                            System.out.println(HALF_WRITTEN);
                            System.out.flush();
                            try {
                                Thread.sleep(Long.MAX_VALUE);
                            } catch (InterruptedException e) {
                                throw new IOException(e);
                            }
                        }
                    }
                };
            }

            @Override public ByteBuffer read(String path, long offset, int length) throws IOException { return local.read(path, offset, length); }
            @Override public long size(String path) throws IOException { return local.size(path); }
            @Override public boolean exists(String path) { return local.exists(path); }
            @Override public void mkdirs(String path) throws IOException { local.mkdirs(path); }
            @Override public void rename(String from, String to) throws IOException { local.rename(from, to); }
            @Override public void replace(String from, String to) throws IOException { local.replace(from, to); }
            @Override public void delete(String path) throws IOException { local.delete(path); }
            @Override public List<String> list(String dir) throws IOException { return local.list(dir); }
            @Override public String resolve(String parent, String child) { return local.resolve(parent, child); }
        };
        new Checkpointer(stalling, args[0], 3).save(2, CheckpointerTest.tensors(3, 1 << 16),
                CheckpointerTest.tensors(4, 1 << 16), CheckpointerTest.state(2));
    }
}
