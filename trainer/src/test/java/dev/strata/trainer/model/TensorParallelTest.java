package dev.strata.trainer.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.InProcessCommunicator;
import dev.strata.parallel.tensor.TensorParallelPlan;
import dev.strata.parallel.tensor.SequenceParallel;
import dev.strata.parallel.tensor.TensorParallelSync;
import dev.strata.runtime.nn.SequenceLayout;
import dev.strata.parallel.tensor.VocabParallel;
import dev.strata.runtime.nn.MeshDim;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.DenseLinear;
import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.nn.Placement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * tp ranks (threads) holding Megatron-LM's slices compute what the whole model computes, in F64: the same logits
 * on every rank, each weight the slice of the whole model's (drawn whole once, then split) and each gradient the
 * slice of the whole model's gradient; weights the plan leaves whole get the whole gradient on every rank.
 */
class TensorParallelTest {
    static final CpuBackend CPU = CpuBackend.INSTANCE;

    @ParameterizedTest
    @CsvSource({"GPT2, 2, 2, false", "LLAMA, 2, 2, false", "LLAMA, 4, 4, false", "LLAMA, 4, 2, false", "LLAMA, 4, 1, false",
            "GPT2, 2, 2, true", "LLAMA, 4, 2, true"})
    void slicesEqualTheWholeModel(String family, int tp, int kvHeads, boolean sequenceParallel) throws Exception {
        ModelConfig cfg = family.equals("GPT2") ? ModelConfig.gpt2(29, 16, 2, 2, 16) : ModelConfig.llama(29, 32, 2, 4, kvHeads, 48, 16);
        Transformer whole = new Transformer(cfg, CPU, DType.F64);
        Initializer.initialize(whole, 42);
        int b = 2, t = 8, vp = cfg.paddedVocabSize();
        int[] ids = new SplittableRandom(1).ints(b * t, 0, cfg.vocabSize()).toArray();
        int[] targets = new SplittableRandom(3).ints(b * t, 0, cfg.vocabSize()).toArray();
        targets[5] = -1; // an ignored position
        double[] logits = CPU.toDoubles(whole.forward(CPU.fromInts(ids, b, t), b, t));
        whole.discardSaved();
        var loss = whole.forwardBackward(CPU.fromInts(ids, b, t), CPU.fromInts(targets, b, t), b, t, 0.37);

        List<Communicator> comms = InProcessCommunicator.group("tp", tp, Duration.ofSeconds(20));
        List<CompletableFuture<Transformer>> ranks = new ArrayList<>();
        for (Communicator c : comms)
            ranks.add(CompletableFuture.supplyAsync(() -> {
                SequenceParallel sp = sequenceParallel ? new SequenceParallel(c) : null;
                var linears = TensorParallelPlan.megatron(cfg.headDim()).maker(c, sp, CPU, DType.F64, DenseLinear.maker(CPU, DType.F64));
                Transformer m = new Transformer(cfg, CPU, DType.F64, linears, Stage.whole(cfg), new VocabParallel(c, sp),
                        sp == null ? SequenceLayout.WHOLE : sp);
                Initializer.initialize(m, 42);
                // the logits stay split by vocabulary rows: each rank has its columns
                Placement columns = Placement.sharded(new int[] {b * t, vp}, 1, MeshDim.TP, c.rank(), tp);
                assertArrayEquals(part(CPU.fromDoubles(logits, DType.F64, b * t, vp), columns),
                        CPU.toDoubles(m.forward(CPU.fromInts(ids, b, t), b, t)), 1e-12, "logits on tp rank " + c.rank());
                m.discardSaved();
                var mine = m.forwardBackward(CPU.fromInts(ids, b, t), CPU.fromInts(targets, b, t), b, t, 0.37);
                assertEquals(loss.sum(), mine.sum(), 1e-12 * Math.abs(loss.sum()), "loss on tp rank " + c.rank());
                assertEquals(loss.count(), mine.count());
                // a key/value head shared by several ranks has each one's part of its gradient until the sync sums them
                try (Tensor sum = CPU.zeros(DType.F64, 1)) {
                    new TensorParallelSync(GradientSync.NONE, c, sequenceParallel).reduce(List.copyOf(m.parameters().values()), sum);
                }
                return m;
            }));
        int sliced = 0;
        for (int r = 0; r < tp; r++) {
            Transformer m = ranks.get(r).get();
            for (Parameter p : m.parameters().values()) {
                Parameter full = whole.parameters().get(p.name());
                Placement where = p.placement();
                assertArrayEquals(where.globalShape(), full.shape(), p.name());
                if (!where.whole()) sliced++;
                assertArrayEquals(part(full.value(), where), CPU.toDoubles(p.value()), 0.0, p.name() + " on tp rank " + r);
                assertArrayEquals(part(full.grad(), where), CPU.toDoubles(p.grad()), 1e-12, p.name() + "'s gradient on tp rank " + r);
            }
        }
        int perLayer = family.equals("GPT2") ? 3 * 2 + 2 + 1 + 1 : 4 + 3, vocabulary = cfg.tieEmbeddings() ? 1 : 2;
        assertEquals(tp * (cfg.nLayers() * perLayer + vocabulary), sliced,
                "every planned weight, the column-parallel biases, the embedding and an untied head are slices");
        comms.forEach(Communicator::close);
    }

    /**
     * FP8 (HALO, emulated on the CPU) slices: after a step every tp rank holds the same amax histories in every
     * layer, the largest of the ranks' (unsynchronised scales are a known source of NaN losses with FP8 + TP), and
     * the loss is the whole FP8 model's within FP8's error.
     */
    @org.junit.jupiter.api.Test
    void fp8SlicesShareTheirScalesOverTp() throws Exception {
        ModelConfig cfg = ModelConfig.llama(29, 64, 1, 4, 2, 96, 16);
        int b = 2, t = 8, tp = 2;
        int[] ids = new SplittableRandom(1).ints(b * t, 0, cfg.vocabSize()).toArray();
        var plan = new dev.strata.quant.Fp8Plan(dev.strata.quant.Rotation.parse("all"), 16, dev.strata.quant.Scaling.parse("delayed"), 4,
                List.of("output"));
        Transformer whole = new Transformer(cfg, CPU, DType.F32, plan.maker(CPU, DType.F32, DenseLinear.maker(CPU, DType.F32)), Stage.whole(cfg));
        Initializer.initialize(whole, 42);
        double wholeLoss = whole.forwardBackward(CPU.fromInts(ids, b, t), CPU.fromInts(ids, b, t), b, t, 1.0).mean();
        List<Communicator> comms = InProcessCommunicator.group("tp", tp, Duration.ofSeconds(20));
        List<CompletableFuture<Transformer>> ranks = new ArrayList<>();
        List<Double> losses = java.util.Collections.synchronizedList(new ArrayList<>());
        for (Communicator c : comms)
            ranks.add(CompletableFuture.supplyAsync(() -> {
                var linears = TensorParallelPlan.megatron(cfg.headDim()).maker(c, CPU, DType.F32, plan.maker(CPU, DType.F32, DenseLinear.maker(CPU, DType.F32)));
                Transformer m = new Transformer(cfg, CPU, DType.F32, linears, Stage.whole(cfg), new VocabParallel(c), SequenceLayout.WHOLE);
                Initializer.initialize(m, 42);
                losses.add(m.forwardBackward(CPU.fromInts(ids, b, t), CPU.fromInts(ids, b, t), b, t, 1.0).mean());
                m.endStep();
                return m;
            }));
        Transformer r0 = ranks.get(0).get(), r1 = ranks.get(1).get();
        int layers = 0;
        for (var e : r0.linears().entrySet()) {
            var mine = e.getValue().stepState();
            var other = r1.linears().get(e.getKey()).stepState();
            assertEquals(mine.keySet(), other.keySet(), e.getKey());
            for (var h : mine.entrySet())
                assertArrayEquals(CPU.toDoubles(h.getValue()), CPU.toDoubles(other.get(h.getKey())), 0.0, e.getKey() + " " + h.getKey() + " on both ranks");
            if (!mine.isEmpty()) layers++;
        }
        assertEquals(7, layers, "every block linear is FP8");
        for (double l : losses) assertEquals(wholeLoss, l, 0.05 * wholeLoss, "the loss within FP8's error of the whole model's");
        comms.forEach(Communicator::close);
    }

    /** Each collective a rank makes, with its tensor's element count, passed on to the real communicator. */
    static final class Recording implements Communicator {
        final Communicator c;
        final List<String> calls = java.util.Collections.synchronizedList(new ArrayList<>());

        Recording(Communicator c) { this.c = c; }

        private dev.strata.parallel.comm.Work log(String op, Tensor t, dev.strata.parallel.comm.Work w) {
            calls.add(op + " " + t.numel());
            return w;
        }

        @Override public int rank() { return c.rank(); }
        @Override public int size() { return c.size(); }
        @Override public String name() { return c.name(); }
        @Override public dev.strata.parallel.comm.Work allReduce(Tensor t, dev.strata.parallel.comm.ReduceOp op) { return log("allReduce", t, c.allReduce(t, op)); }
        @Override public dev.strata.parallel.comm.Work reduce(Tensor t, int root, dev.strata.parallel.comm.ReduceOp op) { return log("reduce", t, c.reduce(t, root, op)); }
        @Override public dev.strata.parallel.comm.Work reduceScatter(Tensor in, Tensor out, dev.strata.parallel.comm.ReduceOp op) {
            return log("reduceScatter", in, c.reduceScatter(in, out, op));
        }
        @Override public dev.strata.parallel.comm.Work allGather(Tensor in, Tensor out) { return log("allGather", out, c.allGather(in, out)); }
        @Override public dev.strata.parallel.comm.Work broadcast(Tensor t, int root) { return log("broadcast", t, c.broadcast(t, root)); }
        @Override public dev.strata.parallel.comm.Work send(Tensor t, int peer) { return log("send", t, c.send(t, peer)); }
        @Override public dev.strata.parallel.comm.Work recv(Tensor t, int peer) { return log("recv", t, c.recv(t, peer)); }
        @Override public dev.strata.parallel.comm.Work barrier() { return c.barrier(); }
        @Override public void close() { c.close(); }
    }

    /**
     * What crosses tp in one micro-batch (GPT-2, 2 blocks, tp = 2): never the logits (N×Vp), only N×3 loss stats
     * from the head; per block one all-reduce forward and backward at each region's edge, or under sequence
     * parallelism an all-gather in and a reduce-scatter out instead, of the same (N,C) size.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
    void onlyTheRegionsEdgesAndTheLossStatsCrossTp(boolean sequenceParallel) throws Exception {
        ModelConfig cfg = ModelConfig.gpt2(29, 16, 2, 2, 16);
        int b = 2, t = 8, n = b * t, c = cfg.dim(), tp = 2;
        int[] ids = new SplittableRandom(1).ints(n, 0, cfg.vocabSize()).toArray();
        List<Recording> comms = InProcessCommunicator.group("tp", tp, Duration.ofSeconds(20)).stream().map(Recording::new).toList();
        List<CompletableFuture<Void>> ranks = new ArrayList<>();
        for (Recording r : comms)
            ranks.add(CompletableFuture.runAsync(() -> {
                SequenceParallel sp = sequenceParallel ? new SequenceParallel(r) : null;
                var linears = TensorParallelPlan.megatron(cfg.headDim()).maker(r, sp, CPU, DType.F64, DenseLinear.maker(CPU, DType.F64));
                Transformer m = new Transformer(cfg, CPU, DType.F64, linears, Stage.whole(cfg), new VocabParallel(r, sp),
                        sp == null ? SequenceLayout.WHOLE : sp);
                Initializer.initialize(m, 42);
                m.forwardBackward(CPU.fromInts(ids, b, t), CPU.fromInts(ids, b, t), b, t, 1.0);
            }));
        for (var f : ranks) f.get();
        List<String> calls = comms.get(0).calls;
        long whole = (long) n * c;
        int layers = cfg.nLayers();
        java.util.function.Function<String, Long> count = op -> calls.stream().filter(x -> x.equals(op + " " + whole)).count();
        if (!sequenceParallel) { // the lookup; forward the exits of 2 regions a block, backward their entries and the head's
            assertEquals(1 + 2 * layers + 2 * layers + 1, count.apply("allReduce"), "calls: " + calls);
        } else {                 // the lookup, then gathers into and scatters out of every region, both ways, and the embedding's gather
            assertEquals(1, count.apply("allReduce"), "calls: " + calls);
            assertEquals(2 * layers + 1 + 2 * layers + 1, count.apply("allGather"), "calls: " + calls);
            assertEquals(2 * layers + 2 * layers + 1, count.apply("reduceScatter"), "calls: " + calls);
        }
        assertTrue(calls.contains("allGather " + tp * n * 3), "the loss exchanges N×3 stats: " + calls);
        assertTrue(calls.stream().allMatch(x -> Long.parseLong(x.substring(x.indexOf(' ') + 1)) <= whole), "nothing larger than (N,C): " + calls);
        assertEquals(sequenceParallel, calls.stream().anyMatch(x -> x.startsWith("reduceScatter")), "reduce-scatter only under sequence parallelism");
        comms.forEach(Communicator::close);
    }

    /** The slice of a whole tensor that a placement names. */
    static double[] part(Tensor whole, Placement where) {
        try (Tensor slice = CPU.zeros(whole.dtype(), where.localShape())) {
            where.take(whole, slice);
            return CPU.toDoubles(slice);
        }
    }

    @org.junit.jupiter.api.Test
    void aLayerThatDoesNotSplitIsRefused() {
        ModelConfig cfg = ModelConfig.llama(29, 16, 1, 4, 2, 24, 16);
        Communicator c = InProcessCommunicator.group("tp", 3, Duration.ofSeconds(1)).get(0);
        var linears = TensorParallelPlan.megatron(cfg.headDim()).maker(c, CPU, DType.F64, DenseLinear.maker(CPU, DType.F64));
        var e = assertThrows(IllegalArgumentException.class, () -> new Transformer(cfg, CPU, DType.F64, linears, Stage.whole(cfg)));
        assertTrue(e.getMessage().contains("layers.0.attention.wq") && e.getMessage().contains("parallel.tp = 3"), e.getMessage());
    }
}
