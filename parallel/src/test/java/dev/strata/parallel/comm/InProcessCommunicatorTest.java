package dev.strata.parallel.comm;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

class InProcessCommunicatorTest {

    /** Runs body on every rank of a fresh group of size n, each on its own thread; returns each rank's failure or null. */
    static List<Throwable> onEveryRank(int n, Duration timeout, java.util.function.Consumer<Communicator> body) throws Exception {
        List<Communicator> group = InProcessCommunicator.group("test", n, timeout);
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (Communicator c : group) futures.add(pool.submit(() -> body.accept(c)));
            List<Throwable> failures = new ArrayList<>();
            for (Future<?> f : futures) {
                try {
                    f.get(timeout.toMillis() * 4 + 10_000, TimeUnit.MILLISECONDS);
                    failures.add(null);
                } catch (java.util.concurrent.ExecutionException e) {
                    failures.add(e.getCause());
                }
            }
            return failures;
        } finally {
            pool.shutdownNow();
            group.forEach(Communicator::close);
        }
    }

    @ParameterizedTest
    @CsvSource({"1, f64", "2, f64", "4, f64", "3, f32"})
    void passesTheContract(int n, String dtype) throws Exception {
        for (String name : CommunicatorContract.CASES) {
            List<Throwable> failures = onEveryRank(n, Duration.ofSeconds(20),
                    c -> CommunicatorContract.run(name, c, CpuBackend.INSTANCE, DType.parse(dtype)));
            for (Throwable t : failures) if (t != null) throw new AssertionError(name + " at size " + n + ": " + t.getMessage(), t);
        }
    }

    /** A rank that never arrives: the others fail within the timeout, naming the group, the operation and the lost rank. */
    @Test
    void aMissingRankIsNamedWithinTheTimeout() throws Exception {
        long t0 = System.nanoTime();
        List<Throwable> failures = onEveryRank(3, Duration.ofSeconds(2), c -> {
            try (Tensor t = CpuBackend.INSTANCE.fromDoubles(new double[] {1, 2}, DType.F64, 2)) {
                c.allReduce(t, ReduceOp.SUM).await(); // everyone meets once
                if (c.rank() == 2) return;            // rank 2 "dies" before the second
                c.allReduce(t, ReduceOp.SUM).await();
            }
        });
        double seconds = (System.nanoTime() - t0) / 1e9;
        assertTrue(seconds < 10, "failed in " + seconds + " s");
        for (int r = 0; r < 2; r++) {
            Throwable e = failures.get(r);
            assertTrue(e instanceof CollectiveException, "rank " + r + ": " + e);
            String m = e.getMessage();
            assertTrue(m.contains("test") && m.contains("allReduce(SUM)") && m.contains("f64[2]") && m.contains("ranks [2]")
                    && m.contains("timed out") && m.contains("rank 2: #0"), m);
        }
        assertTrue(failures.get(2) == null);
    }

    @Test
    void mismatchedCallsAreNamed() throws Exception {
        List<Throwable> failures = onEveryRank(2, Duration.ofSeconds(5), c -> {
            try (Tensor t = CpuBackend.INSTANCE.fromDoubles(new double[] {1, 2}, DType.F64, 2)) {
                if (c.rank() == 0) c.allReduce(t, ReduceOp.SUM).await();
                else c.broadcast(t, 0).await();
            }
        });
        for (Throwable e : failures) {
            assertTrue(e instanceof CollectiveException, String.valueOf(e));
            assertTrue(e.getMessage().contains("does not match across ranks"), e.getMessage());
        }
    }

    @Test
    void badArgumentsAreRefusedAtTheCall() {
        List<Communicator> group = InProcessCommunicator.group("g", 2, Duration.ofSeconds(1));
        try (Tensor in = CpuBackend.INSTANCE.zeros(DType.F64, 5); Tensor out = CpuBackend.INSTANCE.zeros(DType.F64, 2)) {
            var e = assertThrows(IllegalArgumentException.class, () -> group.get(0).reduceScatter(in, out, ReduceOp.SUM));
            assertTrue(e.getMessage().contains("2 blocks"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> group.get(0).send(in, 2));
        } finally {
            group.forEach(Communicator::close);
        }
    }
}
