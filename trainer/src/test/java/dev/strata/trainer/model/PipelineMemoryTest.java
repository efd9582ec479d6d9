package dev.strata.trainer.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.InProcessCommunicator;
import dev.strata.parallel.pipeline.PipelineRunner;
import dev.strata.parallel.pipeline.PipelineSchedule;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.DenseLinear;
import dev.strata.runtime.nn.GradientSync;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Memory follows the schedule: over M = 6 micro-batches on 3 stages, counting the bytes each stage's micro-batch
 * contexts hold at once, GPipe's first stage keeps all 6 micro-batches' activations and 1F1B's at most 3 (pp), the
 * last stage's 1; zero-bubble keeps 1F1B's and puts every linear's weight gradient off to its W pass; interleaving
 * keeps its schedule's chunk passes; and every context is empty again after the step.
 */
class PipelineMemoryTest {
    static final CpuBackend CPU = CpuBackend.INSTANCE;

    /** Each stage's (peak micro-batches in flight, peak activation bytes) after one step of m micro-batches. */
    static long[][] step(PipelineSchedule schedule, int m) throws Exception {
        int b = 2, t = 8, stages = 3, v = schedule.chunks();
        ModelConfig cfg = ModelConfig.llama(29, 16, 3 * v, 2, 1, 32, 16);
        List<Communicator> pp = InProcessCommunicator.group("pp", stages, Duration.ofSeconds(20));
        List<CompletableFuture<long[]>> ranks = new ArrayList<>();
        for (Communicator c : pp)
            ranks.add(CompletableFuture.supplyAsync(() -> {
                int s = c.rank();
                List<Stage.Layers> chunks = new ArrayList<>(); // one block each: stage s holds s, s + 3, ...
                for (int k = s; k < stages * v; k += stages) chunks.add(new Stage.Layers(k, k + 1));
                var stage = new Stage(chunks, s == 0, s == stages - 1);
                Transformer model = new Transformer(cfg, CPU, DType.F64, DenseLinear.maker(CPU, DType.F64), stage);
                Initializer.initialize(model, 7);
                var runner = new PipelineRunner(model, CPU, c, schedule, GradientSync.NONE, b * t, cfg.dim(), DType.F64);
                runner.countActivationBytes();
                List<Tensor> ids = new ArrayList<>(), targets = new ArrayList<>();
                for (int i = 0; i < m; i++) {
                    ids.add(CPU.fromInts(new SplittableRandom(i).ints(b * t, 0, cfg.vocabSize()).toArray(), b, t));
                    targets.add(CPU.fromInts(new SplittableRandom(100 + i).ints(b * t, 0, cfg.vocabSize()).toArray(), b, t));
                }
                try (Tensor loss = CPU.zeros(DType.F64, 1)) {
                    runner.run(ids, targets, b, t, 1.0 / (m * b * t), loss);
                }
                assertTrue(dev.strata.runtime.nn.Activations.current().isEmpty(), "nothing left behind on stage " + s);
                return new long[] {runner.peakInFlight(), runner.peakActivationBytes(), runner.weightGradientsPutOff()};
            }));
        long[][] out = new long[stages][];
        for (int s = 0; s < stages; s++) out[s] = ranks.get(s).get();
        pp.forEach(Communicator::close);
        return out;
    }

    @Test
    void oneForwardOneBackwardKeepsAtMostPpMicroBatches() throws Exception {
        long[][] one = step(PipelineSchedule.ONE_F_ONE_B, 1), gpipe = step(PipelineSchedule.GPIPE, 6), oneF1B = step(PipelineSchedule.ONE_F_ONE_B, 6);
        for (int s = 0; s < 3; s++) {
            long perMicroBatch = one[s][1];
            assertTrue(perMicroBatch > 0);
            System.out.printf("stage %d: one micro-batch %,d bytes; gpipe %d in flight, %,d bytes; 1f1b %d in flight, %,d bytes%n",
                    s, perMicroBatch, gpipe[s][0], gpipe[s][1], oneF1B[s][0], oneF1B[s][1]);
            assertEquals(6, gpipe[s][0], "gpipe keeps every micro-batch on stage " + s);
            assertEquals(6 * perMicroBatch, gpipe[s][1], "gpipe's bytes on stage " + s);
            assertEquals(3 - s, oneF1B[s][0], "1f1b keeps pp - s micro-batches on stage " + s);
            assertEquals((3 - s) * perMicroBatch, oneF1B[s][1], "1f1b's bytes on stage " + s);
            assertEquals(0, oneF1B[s][2]);
        }
        // zero-bubble: 1F1B's micro-batches in flight; every linear's weight gradient (7 a block, one block a stage, and the head) put off
        long[][] zb = step(PipelineSchedule.ZERO_BUBBLE, 6);
        for (int s = 0; s < 3; s++) {
            assertEquals(oneF1B[s][0], zb[s][0], "stage " + s);
            assertEquals(6L * (7 + (s == 2 ? 1 : 0)), zb[s][2], "weight gradients put off on stage " + s);
        }
        // interleaved, 2 chunks of one block a stage: more chunk passes in flight (7 + 1 of warm-up on stage 0), each a block's
        PipelineSchedule interleaved = PipelineSchedule.interleaved(2);
        long[][] il = step(interleaved, 6);
        for (int s = 0; s < 3; s++) assertEquals(interleaved.inFlight(s, 3, 6), il[s][0], "interleaved chunk passes in flight on stage " + s);
        assertEquals(8, il[0][0]);
        assertEquals(il[1][0] * one[1][1], il[1][1], "the middle stage holds one block's activations per chunk pass in flight");
    }
}
