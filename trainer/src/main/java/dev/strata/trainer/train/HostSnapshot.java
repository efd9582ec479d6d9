package dev.strata.trainer.train;

import dev.strata.runtime.Backend;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Host memory a checkpoint's state is copied into (page-locked on the GPU, so the copies run at the link's speed),
 * kept and reused by every save: a save starts only once the previous one's write has finished. The copies run on
 * the backend's copy stream; the pause training takes for a save ends at {@link #await}.
 */
final class HostSnapshot implements AutoCloseable {
    private static final long CHUNK = 1L << 30; // one host buffer holds up to 2 GiB; 1 GiB pieces pin without long stalls
    private final Backend backend;
    private final List<Backend.HostBuffer> chunks = new ArrayList<>();
    private final List<Backend.Event> copies = new ArrayList<>();
    private int chunk;
    private long used; // bytes of chunks[chunk] handed out

    HostSnapshot(Backend backend) { this.backend = backend; }

    /** Starts a snapshot of total bytes over the same memory (more of it the first time). */
    void start(long total) {
        chunk = 0;
        used = 0;
        copies.clear();
        long have = chunks.stream().mapToLong(c -> c.bytes().capacity()).sum();
        for (long left = total - have; left > 0; left -= CHUNK) chunks.add(backend.hostBuffer(Math.min(CHUNK, left)));
    }

    /** Enqueues t's copy into the snapshot; its bytes are there after {@link #await}. */
    HostTensor copy(Tensor t) {
        long bytes = t.numel() * t.dtype().byteSize();
        while (chunk < chunks.size() && used + bytes > chunks.get(chunk).bytes().capacity()) {
            chunk++;
            used = 0;
        }
        if (chunk == chunks.size()) chunks.add(backend.hostBuffer(bytes)); // what start's chunks could not fit end to end
        ByteBuffer view = chunks.get(chunk).bytes().slice(Math.toIntExact(used), Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN);
        used += bytes;
        copies.add(backend.copyToHost(t, new Backend.HostBuffer() {
            @Override public ByteBuffer bytes() { return view; }

            @Override public void close() {}
        }));
        return new HostTensor(t.dtype(), t.shape(), view);
    }

    /** Waits until every copy enqueued since {@link #start} has landed. */
    void await() {
        for (Backend.Event e : copies) {
            e.await();
            e.close();
        }
        copies.clear();
    }

    @Override public void close() {
        await();
        chunks.forEach(Backend.HostBuffer::close);
        chunks.clear();
    }
}
