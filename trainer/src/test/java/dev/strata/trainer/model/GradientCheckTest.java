package dev.strata.trainer.model;

import dev.strata.runtime.nn.Parameter;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Every parameter's hand-written gradient against central finite differences of the loss, in F64. */
class GradientCheckTest {
    private static final Backend CPU = CpuBackend.INSTANCE;

    @ParameterizedTest
    @ValueSource(strings = {"GPT2", "LLAMA"})
    void backwardMatchesFiniteDifferences(String family) {
        ModelConfig cfg = family.equals("GPT2")
                ? ModelConfig.gpt2(13, 8, 2, 2, 16)
                : ModelConfig.llama(13, 8, 2, 4, 2, 12, 16);
        Transformer model = new Transformer(cfg, CPU, DType.F64);
        Initializer.initialize(model, 7);
        perturbNorms(model); // unit norm weights and zero biases would hide mistakes in their gradients
        int b = 2, t = 5;
        SplittableRandom rng = new SplittableRandom(3);
        int[] ids = rng.ints(b * t, 0, cfg.vocabSize()).toArray();
        int[] targets = rng.ints(b * t, 0, cfg.vocabSize()).toArray();
        targets[4] = -1; // an ignored position
        Tensor idsT = CPU.fromInts(ids, b, t), targetsT = CPU.fromInts(targets, b, t);

        model.zeroGrad();
        model.forwardBackward(idsT, targetsT, b, t, 1.0);
        double worst = 0;
        for (Map.Entry<String, Parameter> e : model.parameters().entrySet()) {
            Parameter p = e.getValue();
            double[] grad = CPU.toDoubles(p.grad()), w = CPU.toDoubles(p.value());
            for (int k = 0; k < Math.min(w.length, 6); k++) {
                int i = (int) ((long) k * 7919 % w.length);
                double h = 1e-5, orig = w[i];
                w[i] = orig + h;
                double plus = lossWith(model, p, w, idsT, targetsT, b, t);
                w[i] = orig - h;
                double minus = lossWith(model, p, w, idsT, targetsT, b, t);
                w[i] = orig;
                CPU.copyInto(CPU.fromDoubles(w, DType.F64, p.shape()), p.value());
                double numeric = (plus - minus) / (2 * h);
                // Central differences of a loss near 25 carry ~1e-9 of rounding noise: an absolute floor covers it.
                double err = Math.abs(numeric - grad[i]) / (Math.abs(numeric) + Math.abs(grad[i]) + 1e-3);
                worst = Math.max(worst, err);
                assertTrue(err < 1e-6, family + " " + e.getKey() + "[" + i + "]: analytic " + grad[i] + " vs numeric " + numeric);
            }
        }
        System.out.printf("gradient check %s: worst relative error %.2e%n", family, worst);
    }

    private static double lossWith(Transformer model, Parameter p, double[] w, Tensor ids, Tensor targets, int b, int t) {
        CPU.copyInto(CPU.fromDoubles(w, DType.F64, p.shape()), p.value());
        return model.loss(ids, targets, b, t).sum();
    }

    private static void perturbNorms(Transformer model) {
        SplittableRandom rng = new SplittableRandom(11);
        for (Parameter p : model.parameters().values()) {
            if (p.kind() != Parameter.Kind.NORM && p.kind() != Parameter.Kind.BIAS) continue;
            double[] w = CPU.toDoubles(p.value());
            for (int i = 0; i < w.length; i++) w[i] += 0.3 * (rng.nextDouble() - 0.5);
            CPU.copyInto(CPU.fromDoubles(w, DType.F64, p.shape()), p.value());
        }
    }
}
