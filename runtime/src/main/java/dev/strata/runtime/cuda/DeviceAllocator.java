package dev.strata.runtime.cuda;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.PointerPointer;

/**
 * A caching allocator: blocks are rounded up to a size class (512 B steps below 1 MiB, 2 MiB steps above) and kept on
 * a free list of their class when freed, so steady-state training calls cudaMalloc only while it warms up. All work is
 * on one stream, so a block freed by the host may be handed out again at once: the stream orders its uses.
 *
 * <p>Blocks allocated while a CUDA graph is being captured belong to the graphs: a replay writes them again, so they
 * go back to free lists of their own, which only later captures draw from, until the last graph is closed.
 */
public final class DeviceAllocator {
    public record Stats(long allocatedBytes, long reservedBytes, long peakAllocatedBytes, long mallocCalls) {
        @Override public String toString() {
            return String.format(Locale.ROOT, "allocated %.1f MiB, reserved %.1f MiB, peak %.1f MiB, %d cudaMalloc calls",
                    allocatedBytes / 1048576.0, reservedBytes / 1048576.0, peakAllocatedBytes / 1048576.0, mallocCalls);
        }
    }

    private final Map<Long, ArrayDeque<Long>> free = new HashMap<>(), graphFree = new HashMap<>();
    private final Set<Long> graphBlocks = new HashSet<>();
    private boolean capturing;
    private int liveGraphs;
    private long allocated, reserved, peak, mallocCalls;

    static long sizeClass(long bytes) {
        long small = 512, large = 2L << 20;
        if (bytes <= 0) return small;
        return bytes < (1L << 20) ? (bytes + small - 1) / small * small : (bytes + large - 1) / large * large;
    }

    /** A block of at least {@code bytes}; its size class is what {@link #free} must be given back. */
    public synchronized long allocate(long bytes) {
        long size = sizeClass(bytes);
        ArrayDeque<Long> list = (capturing ? graphFree : free).get(size);
        long address;
        if (list != null && !list.isEmpty()) {
            address = list.pop();
        } else {
            address = cudaMalloc(size);
            if (address == 0 && !capturing) { // emptying the cache waits for the device, which a capture forbids
                emptyCache();
                address = cudaMalloc(size);
            }
            if (address == 0)
                throw new OutOfDeviceMemory(String.format(Locale.ROOT,
                        "out of device memory asking for %.1f MiB (%s); try activation_checkpointing = selective or full, "
                                + "or a smaller training.batch_size", size / 1048576.0, stats()));
        }
        if (capturing) graphBlocks.add(address);
        allocated += size;
        peak = Math.max(peak, allocated);
        return address;
    }

    public synchronized void free(long address, long bytes) {
        long size = sizeClass(bytes);
        (graphBlocks.contains(address) ? graphFree : free).computeIfAbsent(size, s -> new ArrayDeque<>()).push(address);
        allocated -= size;
    }

    /** From now until {@link #endCapture}, blocks come from and go back to the graphs' own free lists. */
    synchronized void beginCapture() { capturing = true; }

    synchronized void endCapture(boolean graphMade) {
        capturing = false;
        if (graphMade) liveGraphs++;
        else if (liveGraphs == 0) releaseGraphBlocks();
    }

    /** A graph was destroyed; with the last one gone its free blocks join the shared free lists. */
    synchronized void graphClosed() {
        if (--liveGraphs == 0) releaseGraphBlocks();
    }

    private void releaseGraphBlocks() {
        graphFree.forEach((size, list) -> {
            graphBlocks.removeAll(list);
            free.computeIfAbsent(size, s -> new ArrayDeque<>()).addAll(list);
        });
        graphFree.clear();
    }

    /** Returns every cached free block to the driver. */
    public synchronized void emptyCache() {
        Cuda.check(cudart.cudaDeviceSynchronize(), "cudaDeviceSynchronize");
        for (var e : free.entrySet()) {
            for (long address : e.getValue()) {
                Cuda.check(cudart.cudaFree(Cuda.at(address)), "cudaFree");
                reserved -= e.getKey();
            }
        }
        free.clear();
    }

    public synchronized Stats stats() { return new Stats(allocated, reserved, peak, mallocCalls); }

    public synchronized void resetPeak() { peak = allocated; }

    private long cudaMalloc(long size) {
        try (PointerPointer<?> out = new PointerPointer<>(1)) {
            int status = cudart.cudaMalloc(out, size);
            if (status == cudart.cudaErrorMemoryAllocation) {
                cudart.cudaGetLastError(); // clear the sticky-free error so the retry can succeed
                return 0;
            }
            Cuda.check(status, "cudaMalloc(" + size + ")");
            mallocCalls++;
            reserved += size;
            return out.get(0).address();
        }
    }
}
