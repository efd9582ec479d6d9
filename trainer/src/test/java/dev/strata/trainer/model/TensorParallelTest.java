package dev.strata.trainer.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.InProcessCommunicator;
import dev.strata.parallel.tensor.TensorParallelPlan;
import dev.strata.parallel.tensor.TensorParallelSync;
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
    @CsvSource({"GPT2, 2, 2", "LLAMA, 2, 2", "LLAMA, 4, 4", "LLAMA, 4, 2", "LLAMA, 4, 1"})
    void slicesEqualTheWholeModel(String family, int tp, int kvHeads) throws Exception {
        ModelConfig cfg = family.equals("GPT2") ? ModelConfig.gpt2(29, 16, 2, 2, 16) : ModelConfig.llama(29, 32, 2, 4, kvHeads, 48, 16);
        Transformer whole = new Transformer(cfg, CPU, DType.F64);
        Initializer.initialize(whole, 42);
        int b = 2, t = 7, vp = cfg.paddedVocabSize();
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
                var linears = TensorParallelPlan.megatron(cfg.headDim()).maker(c, CPU, DType.F64, DenseLinear.maker(CPU, DType.F64));
                Transformer m = new Transformer(cfg, CPU, DType.F64, linears, Transformer.Stage.whole(cfg), new VocabParallel(c));
                Initializer.initialize(m, 42);
                // the logits stay split by vocabulary rows: each rank has its columns
                Placement columns = Placement.sharded(new int[] {b * t, vp}, 1, MeshDim.TP, c.rank(), tp);
                assertArrayEquals(Initializer.slice(logits, columns.globalShape(), 1, columns.offset(), columns.localShape()),
                        CPU.toDoubles(m.forward(CPU.fromInts(ids, b, t), b, t)), 1e-12, "logits on tp rank " + c.rank());
                m.discardSaved();
                var mine = m.forwardBackward(CPU.fromInts(ids, b, t), CPU.fromInts(targets, b, t), b, t, 0.37);
                assertEquals(loss.sum(), mine.sum(), 1e-12 * Math.abs(loss.sum()), "loss on tp rank " + c.rank());
                assertEquals(loss.count(), mine.count());
                // a key/value head shared by several ranks has each one's part of its gradient until the sync sums them
                try (Tensor sum = CPU.zeros(DType.F64, 1)) {
                    new TensorParallelSync(GradientSync.NONE, c).reduce(List.copyOf(m.parameters().values()), sum);
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

    /** The slice of a whole tensor that a placement names. */
    static double[] part(Tensor whole, Placement where) {
        double[] all = CPU.toDoubles(whole);
        return where.whole() ? all : Initializer.slice(all, where.globalShape(), where.shardedDim(), where.offset(), where.localShape());
    }

    @org.junit.jupiter.api.Test
    void aLayerThatDoesNotSplitIsRefused() {
        ModelConfig cfg = ModelConfig.llama(29, 16, 1, 4, 2, 24, 16);
        Communicator c = InProcessCommunicator.group("tp", 3, Duration.ofSeconds(1)).get(0);
        var linears = TensorParallelPlan.megatron(cfg.headDim()).maker(c, CPU, DType.F64, DenseLinear.maker(CPU, DType.F64));
        var e = assertThrows(IllegalArgumentException.class, () -> new Transformer(cfg, CPU, DType.F64, linears, Transformer.Stage.whole(cfg)));
        assertTrue(e.getMessage().contains("layers.0.attention.wq") && e.getMessage().contains("parallel.tp = 3"), e.getMessage());
    }
}
