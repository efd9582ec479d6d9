package dev.strata.trainer.train;

import dev.strata.trainer.model.Stage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.quant.Fp8Plan;
import dev.strata.quant.Rotation;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.DenseLinear;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.Parameter;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** A step whose gradients are not finite changes nothing and gives its step number to the next; training goes on. */
class TrainStepTest {
    static final Backend CPU = CpuBackend.INSTANCE;

    @Test
    void aNonFiniteStepIsSkippedAndTrainingGoesOn() {
        ModelConfig cfg = ModelConfig.llama(64, 32, 2, 4, 2, 64, 16);
        Transformer model = new Transformer(cfg, CPU, DType.F32);
        int b = 2, t = 8;
        int[][] x = tokens(b * t, 4), y = tokens(b * t, 5);
        AdamW opt = initialized(model);
        try (TrainStep step = new TrainStep(model, opt, b, t, 1, 1.0, true)) {
            assertFalse(step.run(x, y, 1e-3).skipped());
            Parameter w = model.parameters().get("layers.0.feed_forward.w2.weight");
            double[] good = CPU.toDoubles(w.value()), poisoned = good.clone();
            poisoned[5] = Double.NaN;
            CPU.copyInto(CPU.fromDoubles(poisoned, DType.F32, w.shape()), w.value());
            Map<String, double[]> before = snapshot(model, opt);

            TrainStep.Result bad = step.run(x, y, 1e-3);
            assertTrue(bad.skipped(), "a NaN weight makes the gradient norm " + bad.gradNorm());
            assertEquals(1, opt.stepCount(), "the skipped step's number goes to the next step");
            snapshot(model, opt).forEach((name, v) -> assertArrayEquals(before.get(name), v, 0, name + " changed in a skipped step"));

            CPU.copyInto(CPU.fromDoubles(good, DType.F32, w.shape()), w.value());
            TrainStep.Result next = step.run(x, y, 1e-3);
            assertFalse(next.skipped(), "training goes on once the gradients are finite again");
            assertEquals(2, opt.stepCount());
        }
    }

    /**
     * With FP8 layers, a skipped step names the first layer whose input was not finite; delayed scaling recovers.
     * Under LoRA the FP8 layers are frozen, and end their steps all the same.
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
    void aNonFiniteFp8StepNamesTheLayer(boolean lora) {
        ModelConfig cfg = ModelConfig.llama(64, 64, 2, 4, 2, 128, 16);
        Linear.Maker fp8 = new Fp8Plan(Rotation.ALL, 32, dev.strata.quant.Scaling.DELAYED, 4, java.util.List.of("output")).maker(CPU, DType.F32, DenseLinear.maker(CPU, DType.F32));
        if (lora) fp8 = new dev.strata.runtime.nn.LoraPlan(4, 8, java.util.List.of("attention", "feed_forward")).maker(CPU, DType.F32, fp8);
        Transformer model = new Transformer(cfg, CPU, DType.F32, fp8, Stage.whole(cfg));
        if (lora) dev.strata.runtime.nn.LoraPlan.freezeAllButAdapters(model.parameters());
        int b = 4, t = 8; // b*t a multiple of the Hadamard block: the weight gradient rotates over tokens
        int[][] x = tokens(b * t, 4), y = tokens(b * t, 5);
        AdamW opt = initialized(model);
        try (TrainStep step = new TrainStep(model, opt, b, t, 1, 1.0, true)) {
            assertFalse(step.run(x, y, 1e-3).skipped());
            assertEquals("", Trainer.nonFiniteLinears(model), "a finite step names no layer");
            Parameter w = model.parameters().get("layers.0.feed_forward.w2.weight");
            double[] good = CPU.toDoubles(w.value()), poisoned = good.clone();
            poisoned[5] = Double.NaN; // an infinity would saturate to the largest FP8 value
            CPU.copyInto(CPU.fromDoubles(poisoned, DType.F32, w.shape()), w.value());
            w.markUpdated();

            assertTrue(step.run(x, y, 1e-3).skipped());
            String where = Trainer.nonFiniteLinears(model);
            assertTrue(where.startsWith("layers.0.feed_forward.w2 (weight) and "), "the layer with the NaN weight is named first: " + where);

            CPU.copyInto(CPU.fromDoubles(good, DType.F32, w.shape()), w.value());
            w.markUpdated();
            TrainStep.Result next = step.run(x, y, 1e-3);
            assertFalse(next.skipped(), "the amax histories drop the skipped step's NaN, so scaling recovers");
            assertEquals("", Trainer.nonFiniteLinears(model));
        }
    }

    /** One micro-batch of n token ids below the test vocabulary's 64. */
    /** Fine-tuning's loss: the mean over the targets that train, the gradients scaled to it, not to every position. */
    @Test
    void aLossPerTrainedTokenScalesByTheTokensThatTrain() {
        ModelConfig cfg = ModelConfig.llama(64, 32, 2, 4, 2, 64, 16);
        int b = 2, t = 8;
        int[][] x = {tokens(b * t, 4)[0], tokens(b * t, 6)[0]}, y = {tokens(b * t, 5)[0], tokens(b * t, 7)[0]};
        for (int[] micro : y) for (int i = 0; i < micro.length; i += 3) micro[i] = -1; // a prompt's, a padding's positions
        long trained = java.util.Arrays.stream(y).flatMapToInt(java.util.Arrays::stream).filter(v -> v >= 0).count();
        TrainStep.Result[] r = new TrainStep.Result[2];
        for (int perToken = 0; perToken < 2; perToken++) {
            Transformer model = new Transformer(cfg, CPU, DType.F64);
            try (AdamW opt = initialized(model); TrainStep step = new TrainStep(model, opt, b, t, 2, 0, false)) {
                if (perToken == 1) step.perTrainedToken();
                r[perToken] = step.run(x, y, 1e-3);
            }
        }
        double positions = 2.0 * b * t;
        assertEquals(r[0].loss() * positions / trained, r[1].loss(), 1e-12, "the loss is the mean over " + trained + " trained tokens");
        assertEquals(r[0].gradNorm() * positions / trained, r[1].gradNorm(), 1e-12, "the gradients are scaled to that mean");
        Transformer model = new Transformer(cfg, CPU, DType.F64);
        try (AdamW opt = initialized(model); TrainStep graphed = new TrainStep(model, opt, b, t, 1, 0, true)) {
            var refused = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, graphed::perTrainedToken);
            assertTrue(refused.getMessage().contains("without pipeline stages or CUDA graphs"), refused.getMessage());
        }
    }

    /** The loss a step reports (copied down before its update) is the mean cross-entropy of the logits it trained on. */
    @Test
    void aStepReportsTheMeanCrossEntropyOfItsBatch() {
        ModelConfig cfg = ModelConfig.llama(64, 32, 2, 4, 2, 64, 16);
        Transformer model = new Transformer(cfg, CPU, DType.F64);
        int b = 2, t = 8, v = cfg.vocabSize(), vp = cfg.paddedVocabSize();
        int[][] x = tokens(b * t, 6), y = tokens(b * t, 7);
        AdamW opt = initialized(model);
        double[] logits;
        try (dev.strata.runtime.Tensor ids = CPU.fromInts(x[0], b, t); dev.strata.runtime.Tensor out = model.forward(ids, b, t)) {
            model.discardSaved();
            logits = CPU.toDoubles(out);
        }
        double sum = 0;
        for (int i = 0; i < b * t; i++) {
            double max = Double.NEGATIVE_INFINITY, z = 0;
            for (int j = 0; j < v; j++) max = Math.max(max, logits[i * vp + j]);
            for (int j = 0; j < v; j++) z += Math.exp(logits[i * vp + j] - max);
            sum += max + Math.log(z) - logits[i * vp + y[0][i]];
        }
        try (TrainStep step = new TrainStep(model, opt, b, t, 1, 1.0, false)) {
            assertEquals(sum / (b * t), step.run(x, y, 1e-3).loss(), 1e-12);
        }
    }

    static int[][] tokens(int n, long seed) { return new int[][] {new SplittableRandom(seed).ints(n, 0, 64).toArray()}; }

    /** Initialises the model's weights and returns AdamW over them. */
    static AdamW initialized(Transformer model) {
        Initializer.initialize(model, 3);
        return new AdamW(model.parameters(), new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, false));
    }

    static Map<String, double[]> snapshot(Transformer model, AdamW opt) {
        Map<String, double[]> m = new LinkedHashMap<>();
        model.parameters().forEach((name, p) -> m.put(name, CPU.toDoubles(p.value())));
        opt.state().forEach((name, t) -> m.put(name, CPU.toDoubles(t)));
        return m;
    }
}
