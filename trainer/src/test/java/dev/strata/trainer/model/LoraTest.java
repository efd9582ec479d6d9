package dev.strata.trainer.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.quant.Fp8Linear;
import dev.strata.quant.Rotation;
import dev.strata.quant.Scaling;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.DenseLinear;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.LoraPlan;
import dev.strata.runtime.nn.Parameter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** LoRA adapters on dense and FP8 base layers, with the rest of the model frozen. */
class LoraTest {
    private static final Backend CPU = CpuBackend.INSTANCE;
    private static final ModelConfig CFG = ModelConfig.llama(64, 64, 2, 4, 2, 128, 16);
    private static final LoraPlan PLAN = new LoraPlan(4, 8, List.of("attention", "feed_forward"));
    private static final int B = 2, T = 16;

    /** A frozen model with adapters on every attention and feed-forward layer over the base layers {@code base}. */
    private static Transformer adapted(Linear.Maker base) {
        Transformer model = new Transformer(CFG, CPU, DType.F64, PLAN.maker(CPU, DType.F64, base), Stage.whole(CFG));
        Initializer.initialize(model, 3);
        LoraPlan.freezeAllButAdapters(model.parameters());
        // B starts at zero, which would hide every gradient but B's own: give it values.
        SplittableRandom rng = new SplittableRandom(9);
        for (Parameter p : model.parameters().values())
            if (p.kind() == Parameter.Kind.LORA_B)
                CPU.copyInto(CPU.fromDoubles(rng.doubles(p.value().numel(), -0.05, 0.05).toArray(), DType.F64, p.shape()), p.value());
        return model;
    }

    private static Linear.Maker dense() { return DenseLinear.maker(CPU, DType.F64); }

    private static Linear.Maker fp8(boolean quantize) {
        return (name, in, out, bias) -> new Fp8Linear(name, new Parameter(name + ".weight", Parameter.Kind.LINEAR_WEIGHT, CPU.zeros(DType.F64, out, in)),
                null, new Fp8Linear.Settings(Rotation.ALL, 32, quantize, Scaling.CURRENT, 0));
    }

    private static Tensor[] batch() {
        SplittableRandom rng = new SplittableRandom(5);
        return new Tensor[] {CPU.fromInts(rng.ints(B * T, 0, CFG.vocabSize()).toArray(), B, T), CPU.fromInts(rng.ints(B * T, 0, CFG.vocabSize()).toArray(), B, T)};
    }

    /** The loss and the adapters' gradients of one forward and backward. */
    private static Map<String, double[]> adapterGradients(Transformer model, double[] loss) {
        Tensor[] batch = batch();
        model.zeroGrad();
        loss[0] = model.forwardBackward(batch[0], batch[1], B, T, 1.0).sum();
        Map<String, double[]> grads = new LinkedHashMap<>();
        model.parameters().forEach((name, p) -> {
            if (p.trainable()) grads.put(name, CPU.toDoubles(p.grad()));
        });
        return grads;
    }

    @Test
    void anAdaptedModelStartsAsItsBaseAndTrainsOnlyTheAdapters() {
        Transformer base = new Transformer(CFG, CPU, DType.F64, dense(), Stage.whole(CFG));
        Initializer.initialize(base, 3);
        Transformer model = new Transformer(CFG, CPU, DType.F64, PLAN.maker(CPU, DType.F64, dense()), Stage.whole(CFG));
        Initializer.initialize(model, 3);
        long trainable = LoraPlan.freezeAllButAdapters(model.parameters());
        Tensor[] batch = batch();
        assertEquals(base.loss(batch[0], batch[1], B, T).sum(), model.loss(batch[0], batch[1], B, T).sum(), 0,
                "B starts at zero, so the adapted model computes its base's loss");
        // 2 layers x (wq, wk, wv, wo, w1, w2, w3), each r*(in+out)
        long expected = 2L * 4 * ((64 + 64) + (64 + 32) + (64 + 32) + (64 + 64) + 3 * (64 + 128));
        assertEquals(expected, trainable);
        for (Parameter p : model.parameters().values()) {
            boolean adapter = p.name().contains(".lora_");
            assertEquals(adapter, p.trainable(), p.name());
            if (!adapter) assertNull(p.grad(), p.name() + " is frozen: no gradient held");
        }
        double[] loss = new double[1];
        assertEquals(expected, adapterGradients(model, loss).values().stream().mapToLong(g -> g.length).sum());
    }

    @Test
    void adapterGradientsMatchFiniteDifferences() {
        Transformer model = adapted(dense());
        double[] loss = new double[1];
        Map<String, double[]> grads = adapterGradients(model, loss);
        Tensor[] batch = batch();
        double worst = 0;
        for (var e : grads.entrySet()) {
            Parameter p = model.parameters().get(e.getKey());
            double[] w = CPU.toDoubles(p.value());
            for (int k = 0; k < 4; k++) {
                int i = (int) ((long) k * 7919 % w.length);
                double h = 1e-5, orig = w[i];
                w[i] = orig + h;
                CPU.copyInto(CPU.fromDoubles(w, DType.F64, p.shape()), p.value());
                double plus = model.loss(batch[0], batch[1], B, T).sum();
                w[i] = orig - h;
                CPU.copyInto(CPU.fromDoubles(w, DType.F64, p.shape()), p.value());
                double minus = model.loss(batch[0], batch[1], B, T).sum();
                w[i] = orig;
                CPU.copyInto(CPU.fromDoubles(w, DType.F64, p.shape()), p.value());
                double numeric = (plus - minus) / (2 * h), analytic = e.getValue()[i];
                // Central differences of a summed loss near 130 carry a few 1e-9 of rounding noise: the floor covers it.
                double err = Math.abs(numeric - analytic) / (Math.abs(numeric) + Math.abs(analytic) + 1e-3);
                worst = Math.max(worst, err);
                assertTrue(err < 2e-5, e.getKey() + "[" + i + "]: analytic " + analytic + " vs numeric " + numeric);
            }
        }
        System.out.printf("LoRA gradient check: worst relative error %.2e%n", worst);
    }

    /**
     * Over an FP8 base, frozen, so the layer skips its weight-gradient GEMM: with FP8 off the rotations cancel and
     * the adapters see the dense model's gradients; with FP8 on, within FP8's rounding of them.
     */
    @Test
    void overAnFp8BaseTheAdaptersLearnWhatTheyWouldOverADenseOne() {
        double[] denseLoss = new double[1], exactLoss = new double[1], fp8Loss = new double[1];
        Map<String, double[]> dense = adapterGradients(adapted(dense()), denseLoss);
        Map<String, double[]> rotated = adapterGradients(adapted(fp8(false)), exactLoss);
        Map<String, double[]> quantized = adapterGradients(adapted(fp8(true)), fp8Loss);
        assertEquals(denseLoss[0], exactLoss[0], 1e-10 * Math.abs(denseLoss[0]));
        double worstExact = 0, worstFp8 = 0;
        for (var e : dense.entrySet()) {
            worstExact = Math.max(worstExact, relativeError(rotated.get(e.getKey()), e.getValue()));
            worstFp8 = Math.max(worstFp8, relativeError(quantized.get(e.getKey()), e.getValue()));
        }
        System.out.printf("LoRA over FP8 (rotation all): loss %.6f vs dense %.6f; worst adapter gradient error %.3f (unquantized %.1e)%n",
                fp8Loss[0], denseLoss[0], worstFp8, worstExact);
        assertTrue(worstExact < 1e-10, "rotations without FP8 leave the adapters' gradients exact: " + worstExact);
        assertTrue(worstFp8 < 0.15 && Math.abs(fp8Loss[0] - denseLoss[0]) < 0.01 * denseLoss[0],
                "FP8's rounding (E4M3 forward, E5M2 backward) moves the adapters' gradients by " + worstFp8);
    }

    /** Recomputing blocks in backward gives LoRA over FP8 the same loss and bit-identical adapter gradients. */
    @ParameterizedTest
    @EnumSource(ActivationCheckpointing.class)
    void loraOverFp8ComposesWithRecomputation(ActivationCheckpointing mode) {
        double[] reference = new double[1], loss = new double[1];
        Map<String, double[]> want = adapterGradients(adapted(fp8(true)), reference);
        Transformer model = adapted(fp8(true));
        model.checkpointActivations(mode);
        Map<String, double[]> got = adapterGradients(model, loss);
        assertEquals(reference[0], loss[0], 0, mode + " loss");
        assertFalse(got.isEmpty());
        for (var e : want.entrySet()) assertArrayEquals(e.getValue(), got.get(e.getKey()), 0, mode + " " + e.getKey());
    }

    @Test
    void badPlansAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new LoraPlan(0, 8, List.of("attention")));
        assertThrows(IllegalArgumentException.class, () -> new LoraPlan(4, 8, List.of()));
        var tooWide = new LoraPlan(100, 8, List.of("attention"));
        var e = assertThrows(IllegalArgumentException.class,
                () -> new Transformer(CFG, CPU, DType.F64, tooWide.maker(CPU, DType.F64, dense()), Stage.whole(CFG)));
        assertTrue(e.getMessage().contains("layers.0.attention.wq") && e.getMessage().contains("rank 100"), e.getMessage());
        Transformer untargeted = new Transformer(CFG, CPU, DType.F64, new LoraPlan(4, 8, List.of("nowhere")).maker(CPU, DType.F64, dense()),
                Stage.whole(CFG));
        e = assertThrows(IllegalArgumentException.class, () -> LoraPlan.freezeAllButAdapters(untargeted.parameters()));
        assertTrue(e.getMessage().contains("lora.targets"), e.getMessage());
    }

    private static double relativeError(double[] got, double[] want) {
        double num = 0, den = 0;
        for (int i = 0; i < got.length; i++) {
            num += (got[i] - want[i]) * (got[i] - want[i]);
            den += want[i] * want[i];
        }
        return Math.sqrt(num / den);
    }
}
