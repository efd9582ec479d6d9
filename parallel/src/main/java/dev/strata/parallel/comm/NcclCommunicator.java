package dev.strata.parallel.comm;

import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cuda.CudaBackend;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.cuda.global.nccl;
import org.bytedeco.cuda.nccl.ncclComm;
import org.bytedeco.cuda.nccl.ncclUniqueId;
import org.bytedeco.javacpp.Pointer;

/**
 * Collectives between GPUs through NCCL, one rank per GPU. They run on a communication stream of their own: each
 * waits for what the compute stream enqueued before it (an event), and {@link Work#await} makes the compute stream
 * wait for the collective in turn, so the host never blocks and backward can go on while a bucket is reduced. Sends
 * and receives are held until the next await or collective and issued as one NCCL group, so a ring of them cannot
 * deadlock. A watchdog thread aborts the communicator when a collective has not finished within the timeout; the
 * next call or await then throws, naming the group, the operation and its size.
 */
public final class NcclCommunicator implements Communicator {
    private final CudaBackend backend;
    private final String name;
    private final int rank, size;
    private final long timeoutNanos;
    private final ncclComm comm = new ncclComm();
    private final CUstream_st stream = new CUstream_st();
    private final List<Runnable> pendingPeerOps = new ArrayList<>();
    private final List<Pending> inFlight = new ArrayList<>();
    private final Thread watchdog;
    private volatile String failure;
    private boolean closed;

    private record Pending(CUevent_st done, String what, long startedNanos) {}

    /** A new NCCL unique id, made by one rank and handed to all (through the rendezvous). */
    public static byte[] uniqueId() {
        ncclUniqueId id = new ncclUniqueId();
        check(nccl.ncclGetUniqueId(id), "ncclGetUniqueId", "");
        byte[] bytes = new byte[nccl.NCCL_UNIQUE_ID_BYTES];
        id.internal().get(bytes);
        return bytes;
    }

    /**
     * This rank's NCCL communicator over the ranks of {@code rendezvous} (same ranks, same size): rank 0 makes the
     * unique id and the rendezvous group (Pekko between processes, later between hosts) hands it to every rank.
     */
    public static NcclCommunicator join(CudaBackend backend, Communicator rendezvous, String name, Duration timeout) {
        var cpu = dev.strata.runtime.cpu.CpuBackend.INSTANCE;
        double[] id = new double[nccl.NCCL_UNIQUE_ID_BYTES];
        if (rendezvous.rank() == 0) {
            byte[] made = uniqueId();
            for (int i = 0; i < id.length; i++) id[i] = made[i];
        }
        try (Tensor shared = cpu.fromDoubles(id, DType.F64, id.length)) {
            rendezvous.broadcast(shared, 0).await();
            double[] got = cpu.toDoubles(shared);
            byte[] bytes = new byte[got.length];
            for (int i = 0; i < bytes.length; i++) bytes[i] = (byte) got[i];
            return new NcclCommunicator(backend, name, bytes, rendezvous.rank(), rendezvous.size(), timeout);
        }
    }

    public NcclCommunicator(CudaBackend backend, String name, byte[] uniqueId, int rank, int size, Duration timeout) {
        this.backend = backend;
        this.name = name;
        this.rank = rank;
        this.size = size;
        this.timeoutNanos = timeout.toNanos();
        ncclUniqueId id = new ncclUniqueId();
        id.internal().put(uniqueId);
        check(cudart.cudaStreamCreateWithFlags(stream, cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
        check(nccl.ncclCommInitRank(comm, size, id, rank), "ncclCommInitRank(" + size + " ranks, rank " + rank + ")", name);
        watchdog = new Thread(this::watch, "nccl-watchdog-" + name + "-" + rank);
        watchdog.setDaemon(true);
        watchdog.start();
    }

    @Override public int rank() { return rank; }

    @Override public int size() { return size; }

    @Override public String name() { return name; }

    @Override public Work allReduce(Tensor t, ReduceOp op) {
        return enqueue("allReduce(" + op + ") of " + t, () -> check(nccl.ncclAllReduce(at(t), at(t), t.numel(), type(t), op(op), comm, stream), "ncclAllReduce", name));
    }

    @Override public Work reduce(Tensor t, int root, ReduceOp op) {
        requirePeer(root);
        return enqueue("reduce(" + op + ", root " + root + ") of " + t, () -> check(nccl.ncclReduce(at(t), at(t), t.numel(), type(t), op(op), root, comm, stream),
                "ncclReduce", name));
    }

    @Override public Work reduceScatter(Tensor input, Tensor output, ReduceOp op) {
        requireBlocks(input, output, "reduceScatter");
        return enqueue("reduceScatter(" + op + ") of " + input, () -> check(nccl.ncclReduceScatter(at(input), at(output), output.numel(), type(output),
                op(op), comm, stream), "ncclReduceScatter", name));
    }

    @Override public Work allGather(Tensor input, Tensor output) {
        requireBlocks(output, input, "allGather");
        return enqueue("allGather of " + input, () -> check(nccl.ncclAllGather(at(input), at(output), input.numel(), type(input), comm, stream),
                "ncclAllGather", name));
    }

    @Override public Work broadcast(Tensor t, int root) {
        requirePeer(root);
        return enqueue("broadcast(root " + root + ") of " + t, () -> check(nccl.ncclBroadcast(at(t), at(t), t.numel(), type(t), root, comm, stream),
                "ncclBroadcast", name));
    }

    @Override public Work send(Tensor t, int peer) {
        requirePeer(peer);
        return peerOp("send to " + peer + " of " + t, () -> check(nccl.ncclSend(at(t), t.numel(), type(t), peer, comm, stream), "ncclSend", name));
    }

    @Override public Work recv(Tensor t, int peer) {
        requirePeer(peer);
        return peerOp("recv from " + peer + " of " + t, () -> check(nccl.ncclRecv(at(t), t.numel(), type(t), peer, comm, stream), "ncclRecv", name));
    }

    @Override public Work barrier() {
        // An all-reduce of one element: NCCL has no barrier of its own.
        Tensor one = backend.zeros(DType.F32, 1);
        Work w = allReduce(one, ReduceOp.SUM);
        return new Work() {
            @Override public void await() {
                w.await();
                backend.synchronize();
                one.close();
            }

            @Override public boolean isDone() { return w.isDone(); }
        };
    }

    /** Enqueues a collective after everything the compute stream holds; sends and receives held back go first. */
    private synchronized Work enqueue(String what, Runnable call) {
        refuseAfterFailure();
        flushPeerOps();
        CUevent_st ready = event();
        check(cudart.cudaEventRecord(ready, backend.stream()), "cudaEventRecord");
        check(cudart.cudaStreamWaitEvent(stream, ready, 0), "cudaStreamWaitEvent");
        cudart.cudaEventDestroy(ready);
        call.run();
        return done(what);
    }

    private synchronized Work peerOp(String what, Runnable call) {
        refuseAfterFailure();
        pendingPeerOps.add(call);
        Pending[] mine = new Pending[1];
        return new Work() {
            @Override public void await() {
                synchronized (NcclCommunicator.this) {
                    if (mine[0] == null) mine[0] = flushPeerOps();
                }
                waitFor(mine[0]);
            }

            @Override public boolean isDone() { return mine[0] != null && cudart.cudaEventQuery(mine[0].done()) == cudart.cudaSuccess; }
        };
    }

    /** Issues the held sends and receives as one group; returns their completion (null when none were held). */
    private Pending flushPeerOps() {
        if (pendingPeerOps.isEmpty()) return inFlight.isEmpty() ? null : inFlight.get(inFlight.size() - 1);
        CUevent_st ready = event();
        check(cudart.cudaEventRecord(ready, backend.stream()), "cudaEventRecord");
        check(cudart.cudaStreamWaitEvent(stream, ready, 0), "cudaStreamWaitEvent");
        cudart.cudaEventDestroy(ready);
        check(nccl.ncclGroupStart(), "ncclGroupStart", name);
        pendingPeerOps.forEach(Runnable::run);
        check(nccl.ncclGroupEnd(), "ncclGroupEnd", name);
        int n = pendingPeerOps.size();
        pendingPeerOps.clear();
        return record(n + " sends and receives");
    }

    private Work done(String what) {
        Pending p = record(what);
        return new Work() {
            @Override public void await() { waitFor(p); }

            @Override public boolean isDone() { return cudart.cudaEventQuery(p.done()) == cudart.cudaSuccess; }
        };
    }

    private Pending record(String what) {
        CUevent_st done = event();
        check(cudart.cudaEventRecord(done, stream), "cudaEventRecord");
        Pending p = new Pending(done, what, System.nanoTime());
        inFlight.add(p);
        return p;
    }

    /** The compute stream waits for the collective; the host does not. */
    private void waitFor(Pending p) {
        refuseAfterFailure();
        check(cudart.cudaStreamWaitEvent(backend.stream(), p.done(), 0), "cudaStreamWaitEvent");
    }

    private void watch() {
        while (!Thread.currentThread().isInterrupted()) {
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                return;
            }
            synchronized (this) {
                if (closed) return;
                inFlight.removeIf(p -> {
                    if (cudart.cudaEventQuery(p.done()) != cudart.cudaSuccess) return false;
                    cudart.cudaEventDestroy(p.done());
                    return true;
                });
                if (!inFlight.isEmpty() && failure == null && System.nanoTime() - inFlight.get(0).startedNanos() > timeoutNanos) {
                    failure = name + ": " + inFlight.get(0).what() + " on rank " + rank + " of " + size + " did not finish within "
                            + timeoutNanos / 1_000_000 + " ms (a rank that never joined it, or died); the communicator was aborted";
                    nccl.ncclCommAbort(comm);
                }
            }
        }
    }

    private void refuseAfterFailure() {
        if (failure != null) throw new CollectiveException(failure);
        if (closed) throw new CollectiveException(name + ": rank " + rank + " used its communicator after closing it");
    }

    @Override public synchronized void close() {
        if (closed) return;
        closed = true;
        watchdog.interrupt();
        if (failure == null) {
            cudart.cudaStreamSynchronize(stream);
            nccl.ncclCommDestroy(comm);
        }
        for (Pending p : inFlight) cudart.cudaEventDestroy(p.done());
        inFlight.clear();
        cudart.cudaStreamDestroy(stream);
    }

    private static CUevent_st event() {
        CUevent_st e = new CUevent_st();
        check(cudart.cudaEventCreateWithFlags(e, cudart.cudaEventDisableTiming), "cudaEventCreateWithFlags");
        return e;
    }

    private static int type(Tensor t) {
        return switch (t.dtype()) {
            case F32 -> nccl.ncclFloat32;
            case BF16 -> nccl.ncclBfloat16;
            case F64 -> nccl.ncclFloat64;
            case I32 -> nccl.ncclInt32;
            default -> throw new IllegalArgumentException("NCCL does not reduce " + t);
        };
    }

    private static int op(ReduceOp op) {
        return switch (op) {
            case SUM -> nccl.ncclSum;
            case AVG -> nccl.ncclAvg;
            case MAX -> nccl.ncclMax;
        };
    }

    private static Pointer at(Tensor t) { return CudaBackend.devicePointer(t); }

    private void requireBlocks(Tensor whole, Tensor block, String op) {
        if (whole.numel() != block.numel() * size || whole.dtype() != block.dtype())
            throw new IllegalArgumentException(name + ": " + op + " needs " + size + " blocks of " + block + " in " + whole);
    }

    private void requirePeer(int peer) {
        if (peer < 0 || peer >= size) throw new IllegalArgumentException(name + ": rank " + peer + " is outside the group of " + size);
    }

    private static void check(int status, String call) {
        if (status != cudart.cudaSuccess)
            throw new CollectiveException(call + " failed: " + cudart.cudaGetErrorString(status).getString());
    }

    private static void check(int status, String call, String group) {
        if (status != nccl.ncclSuccess)
            throw new CollectiveException((group.isEmpty() ? "" : group + ": ") + call + " failed: " + nccl.ncclGetErrorString(status).getString());
    }
}
