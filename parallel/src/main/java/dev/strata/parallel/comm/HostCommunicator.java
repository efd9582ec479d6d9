package dev.strata.parallel.comm;

import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Supplier;

/**
 * Collectives computed on the host from every rank's values, whatever carries them (an {@link Exchange}: threads of
 * one JVM, or Pekko between processes). Each rank's calls run in order on a thread of its own (its communication
 * stream) and meet the other ranks' calls of the same sequence number; every rank then computes its result from all
 * contributions, adding them in rank order in double, so every rank gets the same bits and a run repeats.
 */
final class HostCommunicator implements Communicator {
    private final Exchange group;
    private final int rank;
    private final ExecutorService stream;
    private long calls;

    HostCommunicator(Exchange group, int rank) {
        this.group = group;
        this.rank = rank;
        this.stream = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "comm-" + group.name() + "-" + rank);
            t.setDaemon(true);
            return t;
        });
    }

    @Override public int rank() { return rank; }

    @Override public int size() { return group.size(); }

    @Override public String name() { return group.name(); }

    @Override public Work allReduce(Tensor t, ReduceOp op) {
        return collective("allReduce(" + op + ")", t, (all, b) -> write(b, t, combine(all, op, 0, t.numel())));
    }

    @Override public Work reduce(Tensor t, int root, ReduceOp op) {
        requirePeer(root);
        return collective("reduce(" + op + ", root " + root + ")", t, (all, b) -> { if (rank == root) write(b, t, combine(all, op, 0, t.numel())); });
    }

    @Override public Work reduceScatter(Tensor input, Tensor output, ReduceOp op) {
        requireBlocks(input, output, "reduceScatter");
        return collective("reduceScatter(" + op + ")", input, (all, b) -> write(b, output, combine(all, op, rank * output.numel(), output.numel())));
    }

    @Override public Work allGather(Tensor input, Tensor output) {
        requireBlocks(output, input, "allGather");
        return collective("allGather", input, (all, b) -> {
            int n = Math.toIntExact(input.numel());
            double[] out = new double[n * size()];
            for (int r = 0; r < size(); r++) System.arraycopy(all[r], 0, out, r * n, n);
            write(b, output, out);
        });
    }

    @Override public Work broadcast(Tensor t, int root) {
        requirePeer(root);
        return collective("broadcast(root " + root + ")", t, (all, b) -> { if (rank != root) write(b, t, all[root]); });
    }

    @Override public Work barrier() { return collective("barrier", null, (all, b) -> {}); }

    @Override public Work send(Tensor t, int peer) {
        requirePeer(peer);
        String what = "send to " + peer + " of " + t;
        return submit(what, () -> {
            group.post(rank, peer, t.backend().toDoubles(t));
            return null;
        });
    }

    @Override public Work recv(Tensor t, int peer) {
        requirePeer(peer);
        String what = "recv from " + peer + " of " + t;
        return submit(what, () -> {
            write(t.backend(), t, group.take(peer, rank, t.numel(), what));
            return null;
        });
    }

    @Override public void close() {
        stream.shutdownNow();
        group.close(rank);
    }

    private interface Finish { void apply(double[][] contributions, Backend backend); }

    /** Runs the rank's part of a collective on its stream: contribute, meet the others, take this rank's result. */
    private Work collective(String op, Tensor t, Finish finish) {
        long seq = calls++;
        String what = op + (t == null ? "" : " of " + t);
        return submit(what, () -> {
            double[] mine = t == null ? new double[0] : t.backend().toDoubles(t);
            double[][] all = group.meet(seq, rank, what, mine);
            finish.apply(all, t == null ? null : t.backend());
            group.leave(seq);
            return null;
        });
    }

    private Work submit(String what, Supplier<Void> body) {
        CompletableFuture<Void> f;
        try {
            f = CompletableFuture.supplyAsync(body, stream);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            throw new CollectiveException(name() + ": rank " + rank + " called " + what + " after its communicator was closed");
        }
        return new Work() {
            @Override public void await() {
                try {
                    f.get();
                } catch (ExecutionException e) {
                    throw e.getCause() instanceof CollectiveException c ? c : new CollectiveException(name() + ": " + what + " failed on rank " + rank, e.getCause());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new CollectiveException(name() + ": interrupted while waiting for " + what + " on rank " + rank);
                }
            }

            @Override public boolean isDone() { return f.isDone(); }
        };
    }

    /** Elements [from, from + n) of every rank's values combined by op, in rank order. */
    private double[] combine(double[][] all, ReduceOp op, long from, long n) {
        double[] out = new double[Math.toIntExact(n)];
        for (int i = 0; i < out.length; i++) {
            double acc = all[0][(int) (from + i)];
            for (int r = 1; r < all.length; r++) {
                double v = all[r][(int) (from + i)];
                acc = op == ReduceOp.MAX ? Math.max(acc, v) : acc + v;
            }
            out[i] = op == ReduceOp.AVG ? acc / all.length : acc;
        }
        return out;
    }

    private static void write(Backend backend, Tensor into, double[] values) {
        try (Tensor src = backend.fromDoubles(values, into.dtype(), into.shape())) {
            backend.copyInto(src, into);
        }
    }

    private void requireBlocks(Tensor whole, Tensor block, String op) {
        if (whole.numel() != block.numel() * size() || whole.dtype() != block.dtype())
            throw new IllegalArgumentException(name() + ": " + op + " needs " + size() + " blocks of " + block + " in " + whole);
    }

    private void requirePeer(int peer) {
        if (peer < 0 || peer >= size()) throw new IllegalArgumentException(name() + ": rank " + peer + " is outside the group of " + size());
    }
}
