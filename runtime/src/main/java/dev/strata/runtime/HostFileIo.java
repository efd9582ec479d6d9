package dev.strata.runtime;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;

/**
 * {@link Backend.FileIo} through a host buffer of its own, for a backend with nothing faster: a tensor's bytes read
 * into it and copied in, or copied out and written. Plain reads and writes, through the page cache.
 */
final class HostFileIo implements Backend.FileIo {
    private final Backend backend;

    HostFileIo(Backend backend) { this.backend = backend; }

    @Override public String describe() { return "read and written through a host buffer"; }

    @Override public void read(Path file, List<Part> parts) throws IOException {
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.READ)) {
            for (Part p : parts) {
                long bytes = p.elements() * p.t().dtype().byteSize();
                try (Backend.HostBuffer b = backend.hostBuffer(bytes)) {
                    ByteBuffer into = b.bytes().duplicate().clear().limit(Math.toIntExact(bytes));
                    while (into.hasRemaining())
                        if (c.read(into, p.offset() + into.position()) < 0) throw new IOException(file + " ends before byte " + (p.offset() + bytes));
                    backend.copyFromHostAfter(b, p.t(), p.elements(), Backend.DONE).await();
                }
            }
        }
    }

    @Override public void write(List<Part> parts, Path file) throws IOException {
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.WRITE)) {
            for (Part p : parts) {
                long bytes = p.elements() * p.t().dtype().byteSize();
                try (Backend.HostBuffer b = backend.hostBuffer(bytes)) {
                    backend.copyToHostAfter(p.t(), p.elements(), b, Backend.DONE).await();
                    ByteBuffer from = b.bytes().duplicate().clear().limit(Math.toIntExact(bytes));
                    while (from.hasRemaining()) c.write(from, p.offset() + from.position());
                }
            }
        }
    }
}
