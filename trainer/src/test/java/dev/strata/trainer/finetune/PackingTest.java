package dev.strata.trainer.finetune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.Parameter;
import dev.strata.trainer.model.Documents;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Packed examples compute what they compute alone: the same examples, one a row and packed several to a row, give
 * the same summed loss over the same trained tokens and the same gradients (f64), because attention stops at each
 * example's start and positions restart there.
 */
class PackingTest {
    static final Backend CPU = CpuBackend.INSTANCE;

    /** n examples of min..max tokens, none 0 (the padding), whose first third is prompt (untrained). */
    static List<TokenizedExample> examples(int n, int vocab, long seed, int min, int max) {
        SplittableRandom rng = new SplittableRandom(seed);
        List<TokenizedExample> xs = new ArrayList<>();
        for (int e = 0; e < n; e++) {
            int len = min + rng.nextInt(max - min + 1);
            int[] ids = new int[len];
            boolean[] trained = new boolean[len];
            for (int i = 0; i < len; i++) {
                ids[i] = 1 + rng.nextInt(vocab - 1);
                trained[i] = i >= len / 3;
            }
            xs.add(new TokenizedExample(e + 1, ids, trained));
        }
        return xs;
    }

    record Pass(double loss, long trained, Map<String, double[]> grads) {}

    /** One forward and backward of all of rows as a batch, on the model's backend; the loss summed, gradients per trained token. */
    static Pass pass(Transformer model, dev.strata.trainer.data.Windows rows, int t) {
        Backend backend = model.backend();
        int b = (int) rows.windows();
        int[] inputs = new int[b * t], targets = new int[b * t], starts = new int[b * t];
        for (int r = 0; r < b; r++) {
            rows.window(r, inputs, targets, r);
            rows.starts(r, starts, r);
        }
        model.zeroGrad();
        long trained = java.util.Arrays.stream(targets).filter(y -> y >= 0).count();
        double loss;
        try (Tensor x = backend.fromInts(inputs, b, t); Tensor y = backend.fromInts(targets, b, t);
             Documents docs = rows.packed() ? Documents.of(model, starts, b, t) : null) {
            model.documents(docs);
            loss = model.forwardBackward(x, y, b, t, 1.0 / trained).sum();
            model.documents(null);
        }
        Map<String, double[]> grads = new LinkedHashMap<>();
        for (Parameter p : model.parameters().values()) grads.put(p.name(), backend.toDoubles(p.grad()));
        return new Pass(loss, trained, grads);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama", "gpt2"})
    void packedExamplesGiveTheLossAndGradientsTheyGiveAlone(String family) {
        boolean llama = family.equals("llama");
        var cfg = new ModelConfig(llama ? ModelConfig.Family.LLAMA : ModelConfig.Family.GPT2, 50, 24, 2, 4, llama ? 2 : 4, 6, 48, 64, 1e-5,
                10000, !llama, !llama, !llama);
        Transformer model = new Transformer(cfg, CPU, DType.F64);
        Initializer.initialize(model, 3);
        int t = 40;
        List<TokenizedExample> xs = examples(12, 50, 11, 3, 20);
        PackedExamples packed = new PackedExamples(xs, t, 0);
        assertTrue(packed.windows() < xs.size() / 2, "12 examples of at most 20 tokens pack into " + packed.windows() + " rows of 40");
        Pass alone = pass(model, new ExampleWindows(xs, t, 0), t), together = pass(model, packed, t);
        assertEquals(alone.trained(), together.trained(), "the same tokens train");
        assertEquals(alone.loss(), together.loss(), 1e-10 * alone.loss(), family + ": summed loss");
        double worst = 0;
        for (String name : alone.grads().keySet()) {
            double[] a = alone.grads().get(name), p = together.grads().get(name);
            for (int i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - p[i]));
        }
        assertTrue(worst < 1e-12, family + ": gradients of packed and unpacked examples differ by " + worst);
        System.out.printf("packing %s: 12 examples in %d rows (%.0f%% filled), loss %.12f both ways, worst gradient difference %.1e%n",
                family, packed.windows(), 100 * packed.fill(), alone.loss(), worst);
    }
}
