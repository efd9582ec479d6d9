package dev.strata.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.InProcessCommunicator;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.Parameter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class DataParallelSyncTest {
    private static final CpuBackend CPU = CpuBackend.INSTANCE;
    private static final int[] SIZES = {50, 3, 3, 40, 40, 7, 7, 7, 100, 1};

    private static List<Parameter> params(int rank) {
        List<Parameter> ps = new ArrayList<>();
        for (int i = 0; i < SIZES.length; i++) ps.add(new Parameter("p" + i, Parameter.Kind.LINEAR_WEIGHT, CPU.zeros(DType.F64, SIZES[i])));
        return ps;
    }

    /** Owners run in contiguous blocks of the backward order, and each rank's share is within one parameter of the even share. */
    @Test
    void ownersAreContiguousAndBalancedBySize() {
        List<Parameter> ps = params(0);
        long total = java.util.Arrays.stream(SIZES).sum();
        for (int ranks : new int[] {1, 2, 3, 4}) {
            int[] owners = DataParallelSync.contiguousOwners(ps, ranks);
            long[] load = new long[ranks];
            for (int i = 0; i < SIZES.length; i++) {
                load[owners[i]] += SIZES[i];
                if (i > 0) assertTrue(owners[i] >= owners[i - 1], "contiguous: " + java.util.Arrays.toString(owners));
            }
            assertEquals(0, owners[0]);
            for (long l : load) assertTrue(l <= total / ranks + 100, ranks + " ranks: " + java.util.Arrays.toString(load));
        }
    }

    /** Buckets hold at most their size (a larger parameter alone), one owner and dtype each, every parameter once, in order. */
    @Test
    void bucketsAreCutBySizeOwnerAndDtype() {
        List<Parameter> ps = params(0);
        ps.add(new Parameter("f32", Parameter.Kind.NORM, CPU.zeros(DType.F32, 2)));
        int[] owners = {0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1};
        List<Bucket> buckets = Bucket.cut(ps, owners, 80 * 8);
        List<Parameter> seen = new ArrayList<>();
        for (Bucket b : buckets) {
            assertTrue(b.bytes() <= 80 * 8 || b.params().size() == 1, "a bucket over its size holds one parameter: " + b.params());
            for (Parameter p : b.params()) assertEquals(owners[ps.indexOf(p)], b.owner(), p.name());
            assertEquals(1, b.params().stream().map(p -> p.value().dtype()).distinct().count());
            seen.addAll(b.params());
        }
        assertEquals(ps, seen);
        assertEquals(List.of(List.of("p0", "p1", "p2"), List.of("p3"), List.of("p4", "p5", "p6", "p7"), List.of("p8"), List.of("p9"), List.of("f32")),
                buckets.stream().map(b -> b.params().stream().map(Parameter::name).toList()).toList());
    }

    /**
     * Three ranks, two micro-batches, buckets of 100 bytes, layers reporting in backward order: the gradients end as
     * the sum over ranks and micro-batches (ZeRO-1 and 2: on the owner; under 2 the others hold none of them), the
     * loss as the sum of every rank's.
     */
    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2})
    void bucketsSumEveryRanksGradients(int zero) throws Exception {
        int ranks = 3, micro = 2;
        List<Communicator> comms = InProcessCommunicator.group("dp", ranks, Duration.ofSeconds(10));
        List<CompletableFuture<List<Parameter>>> results = new ArrayList<>();
        List<DataParallelSync> syncs = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            int rank = r;
            var sync = new DataParallelSync(comms.get(r), zero, 100);
            syncs.add(sync);
            results.add(CompletableFuture.supplyAsync(() -> {
                List<Parameter> ps = params(rank);
                sync.plan(ps);
                Tensor loss = CPU.fromDoubles(new double[] {rank + 1}, DType.F64, 1);
                for (int m = 0; m < micro; m++) {
                    sync.startMicroBatch(m == micro - 1);
                    for (int i = 0; i < ps.size(); i += 2) { // a "layer" of two parameters finishes at a time
                        for (Parameter p : ps.subList(i, Math.min(ps.size(), i + 2))) CPU.addInPlace(p.grad(), contribution(p, rank, m));
                        sync.gradientsDone(ps.subList(i, Math.min(ps.size(), i + 2)));
                    }
                }
                sync.reduce(ps, loss);
                assertEquals(6.0, CPU.toDoubles(loss)[0]);
                return ps;
            }));
        }
        for (int r = 0; r < ranks; r++) {
            List<Parameter> ps = results.get(r).get();
            assertTrue(syncs.get(r).bucketSizes().size() > ranks, "several buckets: " + syncs.get(r).bucketSizes());
            for (Parameter p : ps) {
                boolean mine = zero == 0 || syncs.get(r).owner(p) == r;
                assertEquals(mine || zero < 2, p.holdsGrad(), "rank " + r + " holds " + p.name() + "'s gradient");
                if (!mine) continue; // ZeRO-1: the rank's own contribution, which it does not update with
                double[] want = new double[(int) p.value().numel()];
                for (int q = 0; q < ranks; q++)
                    for (int m = 0; m < micro; m++) {
                        double[] c = CPU.toDoubles(contribution(p, q, m));
                        for (int i = 0; i < want.length; i++) want[i] += c[i];
                    }
                assertArrayEquals(want, CPU.toDoubles(p.grad()), 1e-12, "rank " + r + " " + p.name());
            }
        }
        comms.forEach(Communicator::close);
    }

    /** Rank q's gradient of p in micro-batch m: distinct per rank, micro-batch, parameter and element. */
    private static Tensor contribution(Parameter p, int q, int m) {
        double[] v = new double[(int) p.value().numel()];
        for (int i = 0; i < v.length; i++) v[i] = 1 + q * 0.5 + m * 0.25 + i * 0.01 + p.name().hashCode() % 7;
        return CPU.fromDoubles(v, DType.F64, v.length);
    }

    /** ZeRO-1: each owner's values reach every rank, and the others' copies are refreshed. */
    @Test
    void ownersHandTheirUpdatedValuesToEveryRank() throws Exception {
        int ranks = 2;
        List<Communicator> comms = InProcessCommunicator.group("dp", ranks, Duration.ofSeconds(10));
        List<CompletableFuture<List<Parameter>>> results = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            int rank = r;
            var sync = new DataParallelSync(comms.get(r), 1, 64);
            results.add(CompletableFuture.supplyAsync(() -> {
                List<Parameter> ps = params(rank);
                sync.plan(ps);
                for (Parameter p : ps) if (sync.updates(p)) CPU.copyInto(contribution(p, 7, 0), p.value());
                sync.gatherParameters(ps);
                return ps;
            }));
        }
        for (int r = 0; r < ranks; r++)
            for (Parameter p : results.get(r).get()) assertArrayEquals(CPU.toDoubles(contribution(p, 7, 0)), CPU.toDoubles(p.value()), p.name());
        comms.forEach(Communicator::close);
    }

    @Test
    void settingsAreChecked() {
        var comm = InProcessCommunicator.group("dp", 1, Duration.ofSeconds(1)).get(0);
        assertThrows(IllegalArgumentException.class, () -> new DataParallelSync(comm, 3, 1024));
        assertThrows(IllegalArgumentException.class, () -> new DataParallelSync(comm, 0, 0));
        var sync = new DataParallelSync(comm, 1, 1024);
        var p = new Parameter("w", Parameter.Kind.LINEAR_WEIGHT, CPU.zeros(DType.F32, 2));
        var e = assertThrows(IllegalStateException.class, () -> sync.updates(p));
        assertTrue(e.getMessage().contains("no owner"), e.getMessage());
        assertFalse(p.holdsGrad());
        var slice = new Parameter("wq", Parameter.Kind.LINEAR_WEIGHT, CPU.zeros(DType.F32, 2, 4));
        slice.place(new dev.strata.runtime.nn.Placement(new int[] {4, 4}, 0, dev.strata.runtime.nn.MeshDim.DP, 0, 2, java.util.Set.of()));
        var refused = assertThrows(IllegalArgumentException.class, () -> sync.plan(List.of(slice)));
        assertTrue(refused.getMessage().contains("wq is placed as"), refused.getMessage());
        comm.close();
    }
}
