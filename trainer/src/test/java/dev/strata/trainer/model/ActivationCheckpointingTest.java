package dev.strata.trainer.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Recomputing blocks in backward changes memory, never results: the same loss and bit-identical gradients. */
class ActivationCheckpointingTest {
    private static final Backend CPU = CpuBackend.INSTANCE;

    @ParameterizedTest
    @ValueSource(strings = {"GPT2", "LLAMA"})
    void selectiveAndFullGiveTheGradientsOfNone(String family) {
        ModelConfig cfg = family.equals("GPT2") ? ModelConfig.gpt2(29, 16, 3, 2, 16) : ModelConfig.llama(29, 16, 3, 4, 2, 24, 16);
        Map<String, double[]> reference = null;
        double referenceLoss = 0;
        for (ActivationCheckpointing mode : ActivationCheckpointing.values()) {
            Transformer model = new Transformer(cfg, CPU, DType.F64);
            Initializer.initialize(model, 11);
            model.checkpointActivations(mode);
            int b = 2, t = 7;
            SplittableRandom rng = new SplittableRandom(5);
            Tensor ids = CPU.fromInts(rng.ints(b * t, 0, cfg.vocabSize()).toArray(), b, t);
            Tensor targets = CPU.fromInts(rng.ints(b * t, 0, cfg.vocabSize()).toArray(), b, t);
            model.zeroGrad();
            double loss = model.forwardBackward(ids, targets, b, t, 1.0).sum();
            Map<String, double[]> grads = new LinkedHashMap<>();
            model.parameters().forEach((name, p) -> grads.put(name, CPU.toDoubles(p.grad())));
            if (reference == null) {
                reference = grads;
                referenceLoss = loss;
                continue;
            }
            assertEquals(referenceLoss, loss, 0, family + " " + mode + " loss");
            for (var e : reference.entrySet()) assertArrayEquals(e.getValue(), grads.get(e.getKey()), 0, family + " " + mode + " " + e.getKey());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"NONE", "SELECTIVE", "FULL"})
    void blocksToRecompute(String name) {
        ActivationCheckpointing mode = ActivationCheckpointing.parse(name.toLowerCase(java.util.Locale.ROOT));
        assertEquals(mode != ActivationCheckpointing.NONE, mode.recomputes(0));
        assertEquals(mode == ActivationCheckpointing.FULL, mode.recomputes(1));
        assertTrue(mode != ActivationCheckpointing.SELECTIVE || mode.recomputes(2));
        assertFalse(mode == ActivationCheckpointing.NONE && mode.recomputes(2));
    }
}
