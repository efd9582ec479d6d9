package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * What the nvme tier's directory takes, tried before the run: direct I/O or not and the disk's rates there, and
 * whether the backend's file I/O (cuFile) can move a file to the device and back. Each try leaves no file behind.
 */
final class DiskProbe {
    private DiskProbe() {}

    /** Direct I/O or not, and the disk's rates with it, bytes a second. */
    record Rates(boolean direct, double writeRate, double readRate) {}

    /**
     * Writes and reads block (at most 64 MB of it) in dir as the state will be: with direct I/O where the file system
     * takes it (it bypasses the page cache, which would otherwise hold a second copy of the state), plain otherwise.
     */
    static Rates disk(Path dir, ByteBuffer block) {
        try {
            return rates(dir, block, true);
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            try {
                return rates(dir, block, false);
            } catch (IOException plain) {
                throw new UncheckedIOException(dir + ": cannot write and read the optimizer state there: " + plain.getMessage(), plain);
            }
        }
    }

    private static Rates rates(Path dir, ByteBuffer block, boolean direct) throws IOException {
        Path probe = dir.resolve("disk.probe");
        int n = (int) Math.min(block.capacity(), 64 << 20) / StateBlock.ALIGN * StateBlock.ALIGN;
        try {
            long t0 = System.nanoTime();
            try (FileChannel c = FileChannel.open(probe, NvmeStateStore.options(true, direct))) {
                ByteBuffer b = block.duplicate().clear().limit(n);
                while (b.hasRemaining()) c.write(b, n - b.remaining());
                c.force(false);
            }
            long t1 = System.nanoTime();
            try (FileChannel c = FileChannel.open(probe, NvmeStateStore.options(false, direct))) {
                ByteBuffer b = block.duplicate().clear().limit(n);
                while (b.hasRemaining()) if (c.read(b, n - b.remaining()) < 0) throw new IOException("the probe ends early");
            }
            long t2 = System.nanoTime();
            return new Rates(direct, n / ((t1 - t0) / 1e9), n / ((t2 - t1) / 1e9));
        } finally {
            remove(probe);
        }
    }

    /** Writes a small tensor into a file in dir with io and reads it back; why that fails, or null. */
    static String deviceIo(Backend backend, Backend.FileIo io, Path dir) {
        Path probe = dir.resolve("device-io.probe");
        double[] values = {1.5, -2.25, 3.125, 0.375}; // exact in f32
        try (Tensor t = backend.fromDoubles(values, DType.F32, values.length); Tensor back = backend.zeros(DType.F32, values.length)) {
            Files.write(probe, new byte[StateBlock.ALIGN]);
            io.write(List.of(new Backend.FileIo.Part(t, values.length, 0)), probe);
            io.read(probe, List.of(new Backend.FileIo.Part(back, values.length, 0)));
            return java.util.Arrays.equals(backend.toDoubles(back), values) ? null : "what it wrote did not read back the same";
        } catch (IOException | RuntimeException e) {
            return e.getMessage();
        } finally {
            remove(probe);
        }
    }

    private static void remove(Path probe) {
        try {
            Files.deleteIfExists(probe);
        } catch (IOException ignored) {
            // a probe left behind is removed with the directory
        }
    }
}
