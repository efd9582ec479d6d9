package dev.strata.offload;

import dev.strata.runtime.Backend;
import java.nio.ByteBuffer;

/**
 * One subgroup's optimizer state in page-locked host memory, the moments m and v, each one buffer the device copies
 * to and from (also used for a CPU-updated subgroup's weights and gradients on their way through, see
 * {@link HostStaging}). Each parameter's part is a window of these (see {@link #window}).
 */
final class StateBlock implements AutoCloseable {
    static final int ALIGN = 4096; // direct I/O reads and writes whole, aligned blocks
    private final Backend.HostBuffer[] parts = new Backend.HostBuffer[2];
    final long capacityBytes;

    StateBlock(Backend backend, long bytes) {
        if (bytes > Integer.MAX_VALUE - 2L * ALIGN)
            throw new IllegalArgumentException("an optimizer subgroup of " + bytes + " bytes a part is over 2 GiB; give offload smaller subgroups");
        this.capacityBytes = roundUp(bytes);
        for (int i = 0; i < parts.length; i++) parts[i] = backend.hostBuffer(capacityBytes + ALIGN);
        clear();
    }

    static long roundUp(long bytes) { return (bytes + ALIGN - 1) / ALIGN * ALIGN; }

    /** What n elements' two moments take, each part padded to a block. */
    static long bytes(long n, int stateBytes) { return 2 * roundUp(n * stateBytes); }

    Backend.HostBuffer m() { return aligned(parts[0]); }

    Backend.HostBuffer v() { return aligned(parts[1]); }

    /** Trades memory with other, a block of the same size: how an update written beside the moments becomes them. */
    void swap(StateBlock other) {
        if (other.capacityBytes != capacityBytes) throw new IllegalArgumentException("blocks of " + capacityBytes + " and " + other.capacityBytes + " bytes");
        for (int i = 0; i < parts.length; i++) {
            Backend.HostBuffer mine = parts[i];
            parts[i] = other.parts[i];
            other.parts[i] = mine;
        }
    }

    /** Zeroes both parts: where a fresh subgroup's moments start. Page-locked memory comes uncleared. */
    void clear() {
        byte[] zeros = new byte[1 << 16];
        for (Backend.HostBuffer part : parts) {
            ByteBuffer b = part.bytes().duplicate().clear();
            while (b.hasRemaining()) b.put(zeros, 0, Math.min(zeros.length, b.remaining()));
        }
    }

    /** The part's capacityBytes from its first block boundary on. */
    private Backend.HostBuffer aligned(Backend.HostBuffer part) {
        int base = (ALIGN - part.bytes().alignmentOffset(0, ALIGN)) % ALIGN;
        return window(part, base, capacityBytes);
    }

    /** bytes bytes of a part from byte offset on, as a buffer of its own the device copies into its start. */
    static Backend.HostBuffer window(Backend.HostBuffer part, long offset, long bytes) {
        ByteBuffer b = part.bytes().duplicate().clear().position(Math.toIntExact(offset)).limit(Math.toIntExact(offset + bytes)).slice()
                .order(java.nio.ByteOrder.LITTLE_ENDIAN);
        return new Backend.HostBuffer() {
            @Override public ByteBuffer bytes() { return b; }

            @Override public void close() {} // a window: its part owns the memory
        };
    }

    @Override public void close() { for (Backend.HostBuffer part : parts) part.close(); }
}
