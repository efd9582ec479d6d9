package dev.strata.runtime;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * {@link Backend.FileIo} through a host buffer of its own, for a backend with nothing faster: a tensor's bytes read
 * into it and copied in, or copied out and written. Plain reads and writes, through the page cache.
 */
final class HostFileIo implements Backend.FileIo {
    private final Backend backend;

    HostFileIo(Backend backend) { this.backend = backend; }

    @Override public String describe() { return "read and written through a host buffer"; }

    @Override public void read(Path file, long offset, Tensor t, long elements) throws IOException {
        long bytes = elements * t.dtype().byteSize();
        try (Backend.HostBuffer b = backend.hostBuffer(bytes); FileChannel c = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer into = b.bytes().duplicate().clear().limit(Math.toIntExact(bytes));
            while (into.hasRemaining())
                if (c.read(into, offset + into.position()) < 0) throw new IOException(file + " ends before byte " + (offset + bytes));
            backend.copyFromHostAfter(b, t, elements, Backend.DONE).await();
        }
    }

    @Override public void write(Tensor t, long elements, Path file, long offset) throws IOException {
        long bytes = elements * t.dtype().byteSize();
        try (Backend.HostBuffer b = backend.hostBuffer(bytes); FileChannel c = FileChannel.open(file, StandardOpenOption.WRITE)) {
            backend.copyToHostAfter(t, elements, b, Backend.DONE).await();
            ByteBuffer from = b.bytes().duplicate().clear().limit(Math.toIntExact(bytes));
            while (from.hasRemaining()) c.write(from, offset + from.position());
        }
    }
}
