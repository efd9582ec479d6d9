package dev.strata.trainer.train;

import dev.strata.trainer.model.Stage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.Parameter;
import dev.strata.trainer.model.ActivationCheckpointing;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.util.Arrays;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Whole training steps in bf16 on the GPU: every activation a step and an evaluation make is freed by their end
 * (device memory does not grow from step to step), the loss goes down on a repeated batch, and full activation
 * checkpointing lowers the peak without changing the losses.
 */
@Tag("gpu")
class CudaTrainingStepTest {
    static final String UNAVAILABLE = CudaBackend.unavailableReason();

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama"})
    void stepsFreeTheirActivationsAndLearn(String family) {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CUDA training step skipped: " + UNAVAILABLE);
        Run none = train(family, ActivationCheckpointing.NONE), full = train(family, ActivationCheckpointing.FULL);
        // Not bit-identical on the GPU: the embedding backward and attention's dq add with atomics, in no fixed order.
        assertArrayEquals(none.losses(), full.losses(), 2e-3, family + ": losses with full activation checkpointing");
        assertTrue(full.peakBytes() < none.peakBytes(), family + ": peak " + full.peakBytes() + " with full checkpointing vs " + none.peakBytes());
        System.out.printf("%s bf16 steps: loss %.4f -> %.4f; peak device memory %d KiB, with full activation checkpointing %d KiB%n",
                family, none.losses()[0], none.losses()[none.losses().length - 1], none.peakBytes() >> 10, full.peakBytes() >> 10);
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama"})
    void replayedGraphsTrainAsEagerStepsDo(String family) {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CUDA graph test skipped: " + UNAVAILABLE);
        double[] eager = trainSteps(family, false), graphs = trainSteps(family, true);
        // Not bit-identical: the embedding backward and attention's dq add with atomics, in no fixed order.
        assertArrayEquals(eager, graphs, 2e-3, family + ": losses of replayed graphs vs eager steps");
        System.out.printf("%s bf16, 2 micro-batches per step, warm-up + cosine lr: eager %s%n  graphs %s%n", family,
                Arrays.toString(eager), Arrays.toString(graphs));
    }

    /** Eight steps of two micro-batches at a changing learning rate; every step after the first replays graphs when asked. */
    static double[] trainSteps(String family, boolean graphs) {
        try (CudaBackend gpu = CudaBackend.open(0)) {
            ModelConfig cfg = family.equals("gpt2") ? ModelConfig.gpt2(1000, 128, 2, 2, 96)
                                                    : ModelConfig.llama(1000, 128, 2, 2, 1, 352, 96);
            Transformer model = new Transformer(cfg, gpu, DType.BF16);
            Initializer.initialize(model, 7);
            AdamW opt = new AdamW(model.parameters(), new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, false));
            LrSchedule schedule = new LrSchedule(3e-3, 3e-4, 3, 8);
            int b = 3, t = 77;
            SplittableRandom rng = new SplittableRandom(3);
            double[] losses = new double[8];
            long[] allocated = new long[8];
            try (TrainStep step = new TrainStep(model, opt, b, t, 2, 1.0, graphs)) {
                for (int s = 0; s < losses.length; s++) {
                    int[][] inputs = new int[2][], targets = new int[2][];
                    for (int micro = 0; micro < 2; micro++) {
                        int[] tokens = rng.ints((long) b * t + 1, 0, cfg.vocabSize()).toArray();
                        inputs[micro] = Arrays.copyOfRange(tokens, 0, b * t);
                        targets[micro] = Arrays.copyOfRange(tokens, 1, b * t + 1);
                    }
                    losses[s] = step.run(inputs, targets, schedule.at(s)).loss();
                    allocated[s] = gpu.allocator().stats().allocatedBytes();
                }
                assertEquals(graphs, step.replaysGraphs(), "graphs in use");
            }
            for (int s = 2; s < allocated.length; s++) assertEquals(allocated[1], allocated[s], family + ": device bytes held after step " + s);
            return losses;
        }
    }

    /**
     * FP8 linears (rotation all, delayed scaling; wq, wk, wv sharing x's operands, as w1 and w3 do) in bf16, trained
     * in full or frozen under LoRA adapters: eager steps, and steps replayed as graphs with every block recomputed,
     * make the same losses, learn, and hold the same memory from step to step.
     */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void fp8ReplaysGraphsWithRecomputation(boolean lora) {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CUDA FP8 step skipped: " + UNAVAILABLE);
        double[] eager = fp8Steps(lora, false, ActivationCheckpointing.NONE), graphs = fp8Steps(lora, true, ActivationCheckpointing.FULL);
        String what = lora ? "LoRA over FP8" : "FP8";
        assertArrayEquals(eager, graphs, 2e-3, what + ": losses of recomputed, replayed steps vs eager ones");
        assertTrue(eager[eager.length - 1] < eager[0] - 0.5, what + " learns a repeated batch: " + Arrays.toString(eager));
        System.out.printf("%s, bf16: eager %s%n  graphs + full recomputation %s%n", what, Arrays.toString(eager),
                Arrays.toString(graphs));
    }

    static double[] fp8Steps(boolean lora, boolean graphs, ActivationCheckpointing mode) {
        try (CudaBackend gpu = CudaBackend.open(0)) {
            ModelConfig cfg = ModelConfig.llama(1000, 128, 2, 2, 1, 352, 96);
            var linears = new dev.strata.quant.Fp8Plan(dev.strata.quant.Rotation.ALL, 32, dev.strata.quant.Scaling.DELAYED, 4, java.util.List.of("output"))
                    .maker(gpu, DType.F32, dev.strata.runtime.nn.DenseLinear.maker(gpu, DType.F32));
            if (lora) linears = new dev.strata.runtime.nn.LoraPlan(8, 16, java.util.List.of("attention", "feed_forward")).maker(gpu, DType.F32, linears);
            Transformer model = new Transformer(cfg, gpu, DType.BF16, linears, Stage.whole(cfg));
            if (lora) dev.strata.runtime.nn.LoraPlan.freezeAllButAdapters(model.parameters());
            model.checkpointActivations(mode);
            Initializer.initialize(model, 7);
            AdamW opt = new AdamW(model.parameters(), new AdamW.Settings(0.9, 0.95, 1e-8, 0.0, false));
            int b = 4, t = 64; // FP8 GEMMs take token counts that are multiples of 16
            int[] tokens = new SplittableRandom(3).ints((long) b * t + 1, 0, cfg.vocabSize()).toArray();
            int[][] inputs = {Arrays.copyOfRange(tokens, 0, b * t)}, targets = {Arrays.copyOfRange(tokens, 1, b * t + 1)};
            double[] losses = new double[8];
            long[] allocated = new long[losses.length];
            try (TrainStep step = new TrainStep(model, opt, b, t, 1, 1.0, graphs)) {
                for (int s = 0; s < losses.length; s++) {
                    losses[s] = step.run(inputs, targets, 1e-2).loss();
                    allocated[s] = gpu.allocator().stats().allocatedBytes();
                }
                assertEquals(graphs, step.replaysGraphs(), "graphs in use");
            }
            for (int s = 2; s < allocated.length; s++) assertEquals(allocated[1], allocated[s], "device bytes held after step " + s);
            return losses;
        }
    }

    record Run(double[] losses, long peakBytes) {}

    static Run train(String family, ActivationCheckpointing mode) {
        try (CudaBackend gpu = CudaBackend.open(0)) {
            ModelConfig cfg = family.equals("gpt2") ? ModelConfig.gpt2(1000, 128, 2, 2, 96)
                                                    : ModelConfig.llama(1000, 128, 2, 2, 1, 352, 96);
            Transformer model = new Transformer(cfg, gpu, DType.BF16);
            model.checkpointActivations(mode);
            Initializer.initialize(model, 7);
            AdamW opt = new AdamW(model.parameters(), new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, false));
            int b = 3, t = 77;
            int[] tokens = new SplittableRandom(3).ints((long) b * t + 1, 0, cfg.vocabSize()).toArray();
            int[] inputs = Arrays.copyOfRange(tokens, 0, b * t), targets = Arrays.copyOfRange(tokens, 1, b * t + 1);
            long[] allocated = new long[8];
            double[] losses = new double[allocated.length];
            for (int step = 0; step < allocated.length; step++) {
                model.zeroGrad();
                try (Tensor x = gpu.fromInts(inputs, b, t); Tensor y = gpu.fromInts(targets, b, t)) {
                    losses[step] = model.forwardBackward(x, y, b, t, 1.0 / (b * t)).mean();
                    model.loss(x, y, b, t); // an evaluation pass in between must free what it made too
                }
                opt.step(3e-3, 1.0);
                allocated[step] = gpu.allocator().stats().allocatedBytes();
            }
            for (int step = 2; step < allocated.length; step++)
                assertEquals(allocated[1], allocated[step], family + " " + mode + ": device bytes held after step " + step + " vs step 1");
            assertTrue(losses[7] < losses[0] - 1, family + " bf16 loss on a repeated batch went from " + losses[0] + " to " + losses[7]);
            return new Run(losses, gpu.allocator().stats().peakAllocatedBytes());
        }
    }

    /** AdamW writes the bf16 copies the GEMMs read as it updates the f32 weights; they are current after each step. */
    @Test
    void anUpdateLeavesTheBf16CopyOfEachWeightCurrent() {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CUDA AdamW skipped: " + UNAVAILABLE);
        SplittableRandom rng = new SplittableRandom(3);
        try (CudaBackend gpu = CudaBackend.open(0)) {
            var w = new Parameter("w", Parameter.Kind.LINEAR_WEIGHT, gpu.fromDoubles(rng.doubles(4096, -1, 1).toArray(), DType.F32, 64, 64));
            Tensor copy = w.valueAs(DType.BF16);
            try (Tensor grad = gpu.fromDoubles(rng.doubles(4096, -1, 1).toArray(), DType.F32, 64, 64)) {
                gpu.copyInto(grad, w.grad());
            }
            double[] before = gpu.toDoubles(copy);
            try (AdamW opt = new AdamW(Map.of("w", w), new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, false))) {
                opt.step(1e-2, 0);
            }
            assertSame(copy, w.copy(), "the update writes the copy in place");
            try (Tensor rounded = gpu.empty(DType.BF16, 64, 64)) {
                gpu.copyInto(w.value(), rounded);
                assertArrayEquals(gpu.toDoubles(rounded), gpu.toDoubles(copy), 0, "copy = bf16(updated weight)");
            }
            assertFalse(Arrays.equals(before, gpu.toDoubles(copy)), "the copy moved with the weight");
        }
    }
}
