package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Whole training steps in bf16 on the GPU: every activation a step makes is freed by its end (device memory does not
 * grow from step to step), and the loss goes down on a repeated batch.
 */
@Tag("gpu")
class CudaTrainingStepTest {
    static final String UNAVAILABLE = CudaBackend.unavailableReason();

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama"})
    void stepsFreeTheirActivationsAndLearn(String family) {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CUDA training step skipped: " + UNAVAILABLE);
        try (CudaBackend gpu = CudaBackend.open(0)) {
            ModelConfig cfg = family.equals("gpt2") ? ModelConfig.gpt2(1000, 128, 2, 2, 96)
                                                    : ModelConfig.llama(1000, 128, 2, 2, 1, 352, 96);
            Transformer model = new Transformer(cfg, gpu, DType.BF16);
            Initializer.initialize(model, 7);
            AdamW opt = new AdamW(model.parameters(), new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, false));
            int b = 3, t = 77;
            int[] tokens = new SplittableRandom(3).ints((long) b * t + 1, 0, cfg.vocabSize()).toArray();
            int[] inputs = java.util.Arrays.copyOfRange(tokens, 0, b * t), targets = java.util.Arrays.copyOfRange(tokens, 1, b * t + 1);
            double first = 0, last = 0;
            long[] allocated = new long[8];
            for (int step = 0; step < allocated.length; step++) {
                model.zeroGrad();
                try (Tensor x = gpu.fromInts(inputs, b, t); Tensor y = gpu.fromInts(targets, b, t)) {
                    last = model.forwardBackward(x, y, b, t, 1.0 / (b * t)).mean();
                }
                opt.step(3e-3, 1.0);
                if (step == 0) first = last;
                allocated[step] = gpu.allocator().stats().allocatedBytes();
            }
            for (int step = 2; step < allocated.length; step++)
                assertEquals(allocated[1], allocated[step], family + ": device bytes held after step " + step + " vs step 1");
            assertTrue(last < first - 1, family + " bf16 loss on a repeated batch went from " + first + " to " + last);
        }
    }
}
