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

    /** offload.activations: the recomputed blocks' inputs leave the device's context for host memory, and come back unchanged. */
    @ParameterizedTest
    @ValueSource(strings = {"GPT2", "LLAMA"})
    void recomputedInputsOnTheHostGiveTheSameGradients(String family) {
        ModelConfig cfg = family.equals("GPT2") ? ModelConfig.gpt2(29, 16, 3, 2, 16) : ModelConfig.llama(29, 16, 3, 4, 2, 24, 16);
        int b = 2, t = 7;
        for (ActivationCheckpointing mode : new ActivationCheckpointing[] {ActivationCheckpointing.SELECTIVE, ActivationCheckpointing.FULL}) {
            double[] loss = new double[2];
            long[] kept = new long[2];
            java.util.List<Map<String, double[]>> grads = new java.util.ArrayList<>();
            for (int offloaded = 0; offloaded < 2; offloaded++) {
                Transformer model = new Transformer(cfg, CPU, DType.F64);
                Initializer.initialize(model, 11);
                model.checkpointActivations(mode);
                try (var acts = new dev.strata.runtime.nn.ActivationOffload(CPU)) {
                    if (offloaded == 1) model.offloadActivations(acts);
                    SplittableRandom rng = new SplittableRandom(5);
                    Tensor ids = CPU.fromInts(rng.ints(b * t, 0, cfg.vocabSize()).toArray(), b, t);
                    Tensor targets = CPU.fromInts(rng.ints(b * t, 0, cfg.vocabSize()).toArray(), b, t);
                    var context = new dev.strata.runtime.nn.Activations();
                    try (var bound = context.bind(); Tensor logits = model.forward(ids, b, t)) {
                        kept[offloaded] = context.bytes();
                        model.discardSaved();
                    }
                    model.zeroGrad();
                    loss[offloaded] = model.forwardBackward(ids, targets, b, t, 1.0).sum();
                    Map<String, double[]> g = new LinkedHashMap<>();
                    model.parameters().forEach((name, p) -> g.put(name, CPU.toDoubles(p.grad())));
                    grads.add(g);
                }
            }
            long recomputed = java.util.stream.IntStream.range(0, cfg.nLayers()).filter(mode::recomputes).count();
            assertEquals(recomputed * b * t * cfg.dim() * 8, kept[0] - kept[1], family + " " + mode + ": each recomputed block's input left the device");
            assertEquals(loss[0], loss[1], 0, family + " " + mode + " loss");
            for (var e : grads.get(0).entrySet()) assertArrayEquals(e.getValue(), grads.get(1).get(e.getKey()), 0, family + " " + mode + " " + e.getKey());
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
