package dev.strata.trainer.model;

import dev.strata.runtime.nn.DenseLinear;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Two pipeline-style slices of a model compute exactly what the whole model computes, forward and backward. */
class StageTest {
    static final CpuBackend CPU = CpuBackend.INSTANCE;

    @ParameterizedTest
    @ValueSource(strings = {"GPT2", "LLAMA"})
    void twoStagesEqualTheWholeModel(String family) {
        ModelConfig cfg = family.equals("GPT2") ? ModelConfig.gpt2(29, 16, 3, 2, 16) : ModelConfig.llama(29, 16, 3, 4, 2, 24, 16);
        Transformer whole = new Transformer(cfg, CPU, DType.F64);
        var linears = DenseLinear.maker(CPU, DType.F64);
        Transformer first = new Transformer(cfg, CPU, DType.F64, linears, new Stage(0, 2, true, false));
        Transformer second = new Transformer(cfg, CPU, DType.F64, linears, new Stage(2, 3, false, true));
        for (Transformer m : new Transformer[] {whole, first, second}) Initializer.initialize(m, 42);
        if (cfg.tieEmbeddings()) // the head's copy of a tied embedding is kept equal from outside, as pipeline engines do
            CPU.copyInto(whole.parameters().get("tok_embeddings.weight").value(), second.parameters().get("tok_embeddings.weight").value());

        int b = 2, t = 7;
        int[] ids = new SplittableRandom(1).ints(b * t, 0, cfg.vocabSize()).toArray();
        Tensor idsT = CPU.fromInts(ids, b, t);
        int vp = cfg.paddedVocabSize();
        double[] dlogits = new SplittableRandom(2).doubles((long) b * t * vp, -1, 1).toArray();

        whole.zeroGrad();
        Tensor logits = whole.forward(idsT, b, t);
        whole.backward(CPU.fromDoubles(dlogits, DType.F64, b * t, vp));

        first.zeroGrad();
        second.zeroGrad();
        Tensor hidden = first.forward(idsT, b, t);
        Tensor logits2 = second.forward(hidden, b, t);
        assertArrayEquals(CPU.toDoubles(logits), CPU.toDoubles(logits2), 1e-12);
        Tensor dhidden = second.backward(CPU.fromDoubles(dlogits, DType.F64, b * t, vp));
        assertNull(first.backward(dhidden));
        for (Transformer stage : new Transformer[] {first, second})
            stage.parameters().forEach((name, p) -> {
                Tensor grad = p.grad();
                if (name.equals("tok_embeddings.weight") && cfg.tieEmbeddings()) {
                    if (stage == second) return;
                    grad = CPU.add(grad, second.parameters().get(name).grad()); // a tied weight's two halves add up
                }
                assertArrayEquals(CPU.toDoubles(whole.parameters().get(name).grad()), CPU.toDoubles(grad), 1e-12, name);
            });
    }
}
