package dev.strata.parallel.comm;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import java.util.Arrays;
import java.util.List;

/**
 * What every {@link Communicator} must do, written as one rank's part: a harness runs a case on every rank of a
 * group at once (threads, processes or GPUs) and each rank checks its own result. Values depend on the rank, so a
 * result taken from the wrong rank or block shows.
 */
public final class CommunicatorContract {
    public static final List<String> CASES = List.of("allReduce", "reduce", "reduceScatter", "allGather", "broadcast", "sendRecv", "barrier", "ordering");

    private CommunicatorContract() {}

    public static void run(String name, Communicator c, Backend b, DType dtype) {
        switch (name) {
            case "allReduce" -> allReduce(c, b, dtype);
            case "reduce" -> reduce(c, b, dtype);
            case "reduceScatter" -> reduceScatter(c, b, dtype);
            case "allGather" -> allGather(c, b, dtype);
            case "broadcast" -> broadcast(c, b, dtype);
            case "sendRecv" -> sendRecv(c, b, dtype);
            case "barrier" -> c.barrier().await();
            case "ordering" -> ordering(c, b, dtype);
            default -> throw new IllegalArgumentException("no contract case " + name);
        }
    }

    static void allReduce(Communicator c, Backend b, DType dtype) {
        int n = c.size(), r = c.rank(), len = 1000;
        for (ReduceOp op : ReduceOp.values()) {
            double[] mine = new double[len], expected = new double[len];
            for (int i = 0; i < len; i++) {
                mine[i] = (r + 1) * (i % 7 + 1) * 0.5;
                double sum = n * (n + 1) / 2.0 * (i % 7 + 1) * 0.5;
                expected[i] = switch (op) {
                    case SUM -> sum;
                    case AVG -> sum / n;
                    case MAX -> n * (i % 7 + 1) * 0.5;
                };
            }
            try (Tensor t = b.fromDoubles(mine, dtype, 10, 100)) {
                c.allReduce(t, op).await();
                check(expected, b.toDoubles(t), c, "allReduce " + op);
            }
        }
    }

    /** Each rank in turn is the root of a sum. */
    static void reduce(Communicator c, Backend b, DType dtype) {
        int n = c.size();
        for (int root = 0; root < n; root++) {
            try (Tensor t = b.fromDoubles(new double[] {c.rank() + 1, 2, -1}, dtype, 3)) {
                c.reduce(t, root, ReduceOp.SUM).await();
                if (c.rank() == root) check(new double[] {n * (n + 1) / 2.0, 2 * n, -n}, b.toDoubles(t), c, "reduce to " + root);
            }
        }
    }

    static void reduceScatter(Communicator c, Backend b, DType dtype) {
        int n = c.size(), r = c.rank(), block = 6;
        double[] mine = new double[n * block], expected = new double[block];
        for (int i = 0; i < mine.length; i++) mine[i] = r * 100 + i;
        for (int i = 0; i < block; i++) expected[i] = n * (n - 1) / 2.0 * 100 + n * (r * block + i);
        try (Tensor in = b.fromDoubles(mine, dtype, n * block); Tensor out = b.zeros(dtype, block)) {
            c.reduceScatter(in, out, ReduceOp.SUM).await();
            check(expected, b.toDoubles(out), c, "reduceScatter");
        }
    }

    static void allGather(Communicator c, Backend b, DType dtype) {
        int n = c.size(), r = c.rank();
        double[] expected = new double[3 * n];
        for (int i = 0; i < expected.length; i++) expected[i] = (i / 3) * 10 + i % 3 + 1;
        try (Tensor in = b.fromDoubles(new double[] {r * 10 + 1, r * 10 + 2, r * 10 + 3}, dtype, 3); Tensor out = b.zeros(dtype, n, 3)) {
            c.allGather(in, out).await();
            check(expected, b.toDoubles(out), c, "allGather");
        }
    }

    static void broadcast(Communicator c, Backend b, DType dtype) {
        int root = c.size() - 1;
        double[] values = {c.rank() + 0.25, 7, -3};
        try (Tensor t = b.fromDoubles(values, dtype, 3)) {
            c.broadcast(t, root).await();
            check(new double[] {root + 0.25, 7, -3}, b.toDoubles(t), c, "broadcast");
        }
    }

    /** A ring: each rank sends to the next and receives from the one before. */
    static void sendRecv(Communicator c, Backend b, DType dtype) {
        int n = c.size(), r = c.rank(), next = (r + 1) % n, prev = (r + n - 1) % n;
        try (Tensor out = b.fromDoubles(new double[] {r, r * 2, r * 3, 1.5}, dtype, 4); Tensor in = b.zeros(dtype, 4)) {
            Work sent = c.send(out, next);
            c.recv(in, prev).await();
            sent.await();
            check(new double[] {prev, prev * 2, prev * 3, 1.5}, b.toDoubles(in), c, "recv");
        }
    }

    /** Several collectives in flight before the first is awaited complete in the order they were made. */
    static void ordering(Communicator c, Backend b, DType dtype) {
        int n = c.size();
        Tensor[] ts = new Tensor[5];
        Work[] works = new Work[5];
        for (int k = 0; k < ts.length; k++) {
            ts[k] = b.fromDoubles(new double[] {k + 1, c.rank()}, dtype, 2);
            works[k] = c.allReduce(ts[k], k % 2 == 0 ? ReduceOp.SUM : ReduceOp.MAX);
        }
        for (int k = ts.length - 1; k >= 0; k--) works[k].await();
        for (int k = 0; k < ts.length; k++) {
            double[] expected = k % 2 == 0 ? new double[] {n * (k + 1), n * (n - 1) / 2.0} : new double[] {k + 1, n - 1};
            check(expected, b.toDoubles(ts[k]), c, "collective " + k + " of five in flight");
            ts[k].close();
        }
    }

    static void check(double[] expected, double[] actual, Communicator c, String what) {
        if (!Arrays.equals(expected, actual))
            throw new AssertionError(c.name() + " rank " + c.rank() + " of " + c.size() + ": " + what + " gave " + preview(actual)
                    + ", expected " + preview(expected));
    }

    private static String preview(double[] v) { return Arrays.toString(Arrays.copyOf(v, Math.min(v.length, 8))) + (v.length > 8 ? "..." : ""); }
}
