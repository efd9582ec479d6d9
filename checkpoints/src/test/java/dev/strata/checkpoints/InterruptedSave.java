package dev.strata.checkpoints;

import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;

/** Child process of CheckpointerTest: commits step 1, then hangs in the middle of writing step 2 until killed. */
public final class InterruptedSave {
    static final String HALF_WRITTEN = "HALF-WRITTEN";

    public static void main(String[] args) throws Exception {
        Checkpointer.ofRun(new LocalStorage(), args[0], 3).save(1, CheckpointerTest.tensors(1, 1 << 16),
                CheckpointerTest.tensors(2, 1 << 16), CheckpointerTest.state(1));
        Storage stalling = new ForwardingStorage(new LocalStorage()) {
            long written;

            @Override public OutputStream create(String path) throws IOException {
                return new FilterOutputStream(super.create(path)) {
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
        };
        Checkpointer.ofRun(stalling, args[0], 3).save(2, CheckpointerTest.tensors(3, 1 << 16),
                CheckpointerTest.tensors(4, 1 << 16), CheckpointerTest.state(2));
    }
}
