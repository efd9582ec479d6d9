package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * offload.optimizer = nvme: each subgroup's moments in a file of its own under nvme_dir (m and v, each padded to a
 * block), streamed through a few page-locked staging blocks: the next subgroup read ahead while one is
 * updated, an updated one written behind, on an I/O thread, and once an update ends the next one's first subgroups
 * read into the blocks it left, during forward and backward; with direct I/O where the file system takes it (it
 * bypasses the page cache, which would otherwise hold a second copy of the state), plain reads and writes where not.
 * Given a {@link Backend.FileIo} (cuFile), the GPU's subgroups skip the staging blocks: their moments go between
 * their files and the device windows straight, on the same I/O thread, in turn with the other reads and writes.
 */
final class NvmeStateStore implements StateStore {
    static final int STAGING = DeviceWindows.COUNT + 2; // GPU subgroups on their way back, the one updated, the one read ahead
    private final Path dir;
    private final StateBlock[] slots;
    private final int[] holds;                 // slots[i] holds this subgroup's state (read, or read ahead), or -1
    private final Future<?>[] pending;         // the slot's read or write in flight, or null
    private final Map<Integer, Integer> slotOf = new HashMap<>();
    private final java.util.Set<Integer> opened = new java.util.HashSet<>(); // subgroups opened and not yet done or released
    private final java.util.Set<Integer> onFile = new java.util.HashSet<>(); // written once: reads come after that write (one I/O thread)
    private final ExecutorService io = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "offload-nvme-io");
        t.setDaemon(true);
        return t;
    });
    private final boolean direct;
    private final int bytesPerState;
    private final long bytes;                   // what its files hold
    private final double writeRate, readRate;   // bytes a second, measured at start
    private final Backend.FileIo deviceIo;      // the GPU subgroups' moments straight to and from the device; null: through the blocks
    private final String deviceIoRefused;       // why the one given could not take files here, or null
    private Future<?> lastDirect;               // the last of those reads and writes queued

    /**
     * The files go in a directory of their own under nvmeDir, removed on close (the checkpoints hold the state);
     * deviceIo, if any, is tried there first: where it cannot move a file to the device and back, the GPU's
     * subgroups go through the blocks too, or (required) the run stops before it starts.
     */
    NvmeStateStore(Backend backend, List<Subgroup> subgroups, int stateBytes, Path nvmeDir, Backend.FileIo deviceIo, boolean required) {
        this.dir = nvmeDir.resolve("strata-offload-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
        this.bytesPerState = stateBytes;
        long largest = subgroups.stream().mapToLong(Subgroup::elements).max().orElse(1) * stateBytes, total = 0;
        for (Subgroup k : subgroups) total += StateBlock.bytes(k.elements(), stateBytes);
        this.bytes = total;
        try {
            Files.createDirectories(nvmeDir);
            long free = Files.getFileStore(nvmeDir).getUsableSpace();
            if (free < total)
                throw new IllegalArgumentException(String.format(java.util.Locale.ROOT, "offload.nvme_dir %s has %.1f GB free; the optimizer state needs %.1f GB there",
                        nvmeDir, free / 1e9, total / 1e9));
            Files.createDirectory(dir);
        } catch (IOException e) {
            throw new IllegalArgumentException("offload.nvme_dir " + dir + " cannot be used: " + e.getMessage());
        }
        slots = new StateBlock[STAGING];
        for (int i = 0; i < STAGING; i++) slots[i] = new StateBlock(backend, largest);
        holds = new int[STAGING];
        java.util.Arrays.fill(holds, -1);
        pending = new Future<?>[STAGING];
        DiskProbe.Rates disk;
        try {
            disk = DiskProbe.disk(dir, slots[0].m().bytes());
        } catch (RuntimeException e) {
            close(); // a disk that cannot be measured leaves no directory or pinned memory behind
            throw e;
        }
        String refused = deviceIo == null ? null : DiskProbe.deviceIo(backend, deviceIo, dir);
        if (refused != null) {
            deviceIo.close();
            if (required) {
                close();
                throw new IllegalArgumentException("offload.cufile = true, but cuFile cannot move files under " + nvmeDir + " to the GPU and back: " + refused
                        + "; set offload.cufile = auto or false");
            }
        }
        this.deviceIo = refused == null ? deviceIo : null;
        this.deviceIoRefused = refused;
        direct = disk.direct();
        writeRate = disk.writeRate();
        readRate = disk.readRate();
    }

    /** The page-locked memory its staging blocks take for subgroups of up to largestBytes a part. */
    static long stagingBytes(long largestBytes) { return STAGING * 2L * (StateBlock.roundUp(largestBytes) + StateBlock.ALIGN); }

    /**
     * Where the state lives and what it costs: every step reads and writes each file once, on one I/O thread, on
     * whichever side the subgroup is updated (so the disk's rates, measured at start, do not move the split).
     */
    @Override public String describe() {
        String gpu = deviceIo != null ? "; the GPU's subgroups' moments " + deviceIo.describe()
                : deviceIoRefused != null ? "; cuFile could not take files there (" + deviceIoRefused + "), so the GPU's subgroups go through the blocks too" : "";
        if (!direct) return "files under " + dir.getParent() + " (no direct I/O there: plain reads and writes, through the page cache" + gpu + ")";
        return String.format(java.util.Locale.ROOT, "files under %s (direct I/O; the disk measured at start: %.2f GB/s write, %.2f read, so the %.1f GB there "
                + "take about %.1f s of disk a step%s)", dir.getParent(), writeRate / 1e9, readRate / 1e9, bytes / 1e9, bytes / writeRate + bytes / readRate, gpu);
    }

    private Path file(Subgroup k) { return dir.resolve(String.format("subgroup-%05d.state", k.index())); }

    static OpenOption[] options(boolean write, boolean direct) {
        List<OpenOption> o = new ArrayList<>(write ? List.of(StandardOpenOption.CREATE, StandardOpenOption.WRITE) : List.of(StandardOpenOption.READ));
        if (direct) o.add(com.sun.nio.file.ExtendedOpenOption.DIRECT);
        return o.toArray(OpenOption[]::new);
    }

    /** The parts of a subgroup's file, in order: m, v. */
    private List<ByteBuffer> parts(StateBlock b, Subgroup k) {
        long bytes = StateBlock.roundUp(k.elements() * bytesPerState);
        return List.of(window(b.m(), bytes), window(b.v(), bytes));
    }

    private static ByteBuffer window(Backend.HostBuffer part, long bytes) { return part.bytes().duplicate().clear().limit(Math.toIntExact(bytes)); }

    private void transfer(Subgroup k, StateBlock b, boolean write) {
        try (FileChannel c = FileChannel.open(file(k), options(write, direct))) {
            long at = 0;
            for (ByteBuffer part : parts(b, k)) {
                long n = part.remaining();
                while (part.hasRemaining()) {
                    int done = write ? c.write(part, at + n - part.remaining()) : c.read(part, at + n - part.remaining());
                    if (done < 0) throw new IOException("the file ends early");
                }
                at += n;
            }
        } catch (IOException e) {
            throw new UncheckedIOException(file(k) + ": cannot " + (write ? "write" : "read") + " the optimizer state: " + e.getMessage(), e);
        }
    }

    private void await(int slot) {
        join(pending[slot]);
        pending[slot] = null;
    }

    /** Waits for an I/O task (null: none), passing on its failure. */
    private static void join(Future<?> task) {
        if (task == null) return;
        try {
            task.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the optimizer state's I/O");
        } catch (java.util.concurrent.ExecutionException e) {
            // a new exception each time: a task's failure is passed on wherever it is joined, close() among them
            Throwable cause = e.getCause();
            if (cause instanceof UncheckedIOException u) throw new UncheckedIOException(u.getMessage(), u.getCause());
            throw new IllegalStateException(cause.getMessage(), cause);
        }
    }

    /** A slot nobody holds, once its write behind has landed; -1 if every slot holds a subgroup. */
    private int freeSlot(boolean wait) {
        for (int i = 0; i < STAGING; i++) if (holds[i] == -1 && (pending[i] == null || pending[i].isDone())) return i;
        if (!wait) return -1;
        for (int i = 0; i < STAGING; i++)
            if (holds[i] == -1) {
                await(i);
                return i;
            }
        for (int i = 0; i < STAGING; i++) // a read ahead gives way to an open: what opens in another order than the update (a checkpoint)
            if (!opened.contains(holds[i])) {
                await(i);
                slotOf.remove(holds[i]);
                holds[i] = -1;
                return i;
            }
        throw new IllegalStateException("every staging block of the nvme tier is in use: a subgroup was opened and not done");
    }

    /** Starts reading k into a free slot; first: the subgroup starts from zeros (no file yet). */
    private int load(Subgroup k, boolean wait) {
        int slot = freeSlot(wait);
        if (slot < 0) return -1;
        await(slot);
        holds[slot] = k.index();
        slotOf.put(k.index(), slot);
        StateBlock b = slots[slot];
        if (onFile.contains(k.index())) pending[slot] = io.submit(() -> transfer(k, b, false));
        else b.clear();
        return slot;
    }

    @Override public void prefetch(Subgroup next) {
        if (!direct(next) && !slotOf.containsKey(next.index())) load(next, false);
    }

    /**
     * Reads ahead, in order, the subgroups the next update opens first into every slot nobody holds, each read
     * queued behind its slot's write on the one I/O thread: they come in during forward and backward.
     */
    @Override public void readAhead(List<Subgroup> order) {
        for (Subgroup k : order) {
            if (slotOf.containsKey(k.index()) || direct(k)) continue;
            int slot = 0;
            while (slot < STAGING && holds[slot] != -1) slot++;
            if (slot == STAGING) return;
            if (!onFile.contains(k.index())) return; // before the first update: nothing to read
            Future<?> write = pending[slot];
            StateBlock b = slots[slot];
            holds[slot] = k.index();
            slotOf.put(k.index(), slot);
            pending[slot] = io.submit(() -> {
                join(write); // done already (one thread, in order); its failure is passed on
                transfer(k, b, false);
            });
        }
    }

    @Override public StateBlock open(Subgroup k) {
        Integer slot = slotOf.get(k.index());
        int s = slot != null ? slot : load(k, true);
        await(s);
        opened.add(k.index());
        return slots[s];
    }

    @Override public void done(Subgroup k) {
        opened.remove(k.index());
        int slot = slotOf.remove(k.index());
        StateBlock b = slots[slot];
        pending[slot] = io.submit(() -> transfer(k, b, true));
        onFile.add(k.index());
        holds[slot] = -1;
    }

    @Override public void release(Subgroup k) {
        opened.remove(k.index());
        holds[slotOf.remove(k.index())] = -1;
    }

    @Override public boolean writesBack(Subgroup k) { return true; }

    @Override public boolean direct(Subgroup k) { return deviceIo != null && k.onGpu(); }

    @Override public Backend.Event readInto(Subgroup k, Tensor m, Tensor v) {
        if (!onFile.contains(k.index())) return null;
        return queued(() -> deviceIo.read(file(k), moments(k, m, v)), k, "read");
    }

    @Override public Backend.Event writeFrom(Subgroup k, Tensor m, Tensor v, Backend.Event after) {
        boolean first = onFile.add(k.index()); // a file written before is whole already
        return queued(() -> {
            try (after) {
                after.await();
            }
            if (first)
                try (var f = new java.io.RandomAccessFile(file(k).toFile(), "rw")) { // whole, as a block's read takes it
                    f.setLength(StateBlock.bytes(k.elements(), bytesPerState));
                }
            deviceIo.write(moments(k, m, v), file(k));
        }, k, "write");
    }

    /** k's moments in m and v at their places in its file: m, then v from the next block boundary. */
    private List<Backend.FileIo.Part> moments(Subgroup k, Tensor m, Tensor v) {
        return List.of(new Backend.FileIo.Part(m, k.elements(), 0), new Backend.FileIo.Part(v, k.elements(), StateBlock.roundUp(k.elements() * bytesPerState)));
    }

    private interface Transfer {
        void run() throws IOException;
    }

    /** A transfer between k's file and the device on the I/O thread, after what is queued there; the event says when it is done. */
    private Backend.Event queued(Transfer t, Subgroup k, String what) {
        Future<?> f = lastDirect = io.submit(() -> {
            try {
                t.run();
            } catch (IOException e) {
                throw new UncheckedIOException(file(k) + ": cannot " + what + " the optimizer state: " + e.getMessage(), e);
            }
        });
        return new Backend.Event() {
            @Override public void await() { join(f); }

            @Override public boolean done() { return f.isDone(); }
        };
    }

    @Override public void flush() {
        for (int i = 0; i < STAGING; i++) if (holds[i] == -1) await(i);
        join(lastDirect);
    }

    @Override public void close() {
        try {
            for (int i = 0; i < STAGING; i++) await(i); // reads ahead too: nothing may land in a block once it is freed
            join(lastDirect);
        } finally {
            io.shutdown();
            if (deviceIo != null) deviceIo.close();
            for (StateBlock b : slots) b.close();
            try (var files = Files.list(dir)) {
                for (Path f : files.toList()) Files.deleteIfExists(f);
                Files.deleteIfExists(dir);
            } catch (IOException e) {
                System.err.println("offload: could not remove " + dir + ": " + e.getMessage());
            }
        }
    }
}
