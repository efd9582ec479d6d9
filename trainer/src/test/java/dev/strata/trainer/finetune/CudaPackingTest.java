package dev.strata.trainer.finetune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.runtime.nn.Parameter;
import dev.strata.trainer.data.Windows;
import dev.strata.trainer.model.Documents;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The document masks of the CUDA attention kernels: examples packed into rows of 256 (boundaries inside and across
 * the kernels' 64-key tiles) give the loss and gradients they give one a row, on the tensor-core kernels (bf16,
 * head_dim 64) and the reference ones (f32).
 */
@Tag("gpu")
class CudaPackingTest {
    static final String UNAVAILABLE = CudaBackend.unavailableReason();

    record Pass(double loss, double[] grads) {}

    static Pass pass(Transformer model, Windows rows, int t) {
        Backend gpu = model.backend();
        int b = (int) rows.windows();
        int[] inputs = new int[b * t], targets = new int[b * t], starts = new int[b * t];
        for (int r = 0; r < b; r++) {
            rows.window(r, inputs, targets, r);
            rows.starts(r, starts, r);
        }
        model.zeroGrad();
        long trained = java.util.Arrays.stream(targets).filter(y -> y >= 0).count();
        double loss;
        try (Tensor x = gpu.fromInts(inputs, b, t); Tensor y = gpu.fromInts(targets, b, t);
             Documents docs = rows.packed() ? Documents.of(gpu, model.config(), model.precision().params(), starts, b, t) : null) {
            model.documents(docs);
            loss = model.forwardBackward(x, y, b, t, 1.0 / trained).sum() / trained;
            model.documents(null);
        }
        List<Parameter> ps = List.copyOf(model.parameters().values());
        double[] all = ps.stream().flatMapToDouble(p -> java.util.Arrays.stream(gpu.toDoubles(p.grad()))).toArray();
        return new Pass(loss, all);
    }

    @ParameterizedTest
    @ValueSource(strings = {"bf16", "f32"})
    void packedRowsOnTheGpuComputeWhatSeparateRowsDo(String dtype) {
        assumeTrue(UNAVAILABLE == null, "no GPU here, packed attention on CUDA skipped: " + UNAVAILABLE);
        try (CudaBackend gpu = CudaBackend.open(0)) {
            var cfg = new ModelConfig(ModelConfig.Family.LLAMA, 64, 128, 2, 2, 1, 64, 256, 256, 1e-5, 10000, false, false, false);
            Transformer model = new Transformer(cfg, gpu, DType.parse(dtype));
            Initializer.initialize(model, 5);
            int t = 256;
            List<TokenizedExample> xs = PackingTest.examples(24, 64, 17, 18, 120);
            PackedExamples packed = new PackedExamples(xs, t, 0);
            Pass alone = pass(model, new ExampleWindows(xs, t, 0), t), together = pass(model, packed, t);
            double tol = dtype.equals("bf16") ? 3e-3 : 1e-5;
            assertEquals(alone.loss(), together.loss(), tol * alone.loss(), dtype + ": loss per trained token");
            double num = 0, den = 0;
            for (int i = 0; i < alone.grads().length; i++) {
                double d = alone.grads()[i] - together.grads()[i];
                num += d * d;
                den += alone.grads()[i] * alone.grads()[i];
            }
            double rel = Math.sqrt(num / den);
            assertTrue(rel < (dtype.equals("bf16") ? 2e-2 : 1e-5), dtype + ": gradients of packed rows differ by " + rel + " (relative norm)");
            System.out.printf("cuda packing %s: %d examples in %d rows of %d (%.0f%% filled), loss %.6f alone, %.6f packed, gradient difference %.2e%n",
                    dtype, xs.size(), packed.windows(), t, 100 * packed.fill(), alone.loss(), together.loss(), rel);
        }
    }
}
