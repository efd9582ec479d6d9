package dev.strata.trainer.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Backward reports each parameter once, as soon as its gradient is final: the head first, the blocks from the last,
 * the embeddings at the end (a tied head's weight too), so data parallelism can reduce layers while backward goes on.
 */
class GradientsDoneTest {
    @ParameterizedTest
    @EnumSource(ModelConfig.Family.class)
    void everyParameterIsReportedOnceInBackwardOrder(ModelConfig.Family family) {
        var cpu = CpuBackend.INSTANCE;
        Transformer model = new Transformer(KvCacheTest.config(family), cpu, DType.F64);
        Initializer.initialize(model, 1);
        List<String> order = new ArrayList<>();
        List<double[]> atReport = new ArrayList<>();
        model.onGradientsDone(ps -> {
            for (Parameter p : ps) {
                order.add(p.name());
                atReport.add(cpu.toDoubles(p.grad()));
            }
        });
        int[] ids = {1, 5, 9, 2, 7, 3};
        try (Tensor x = cpu.fromInts(ids, 1, 6); Tensor y = cpu.fromInts(new int[] {5, 9, 2, 7, 3, 4}, 1, 6)) {
            model.forwardBackward(x, y, 1, 6, 1.0);
        }
        List<String> expected = new ArrayList<>(model.parameters().keySet());
        assertEquals(expected.size(), order.size(), "each once: " + order);
        assertTrue(order.containsAll(expected));
        assertTrue(order.indexOf("norm.weight") < order.indexOf("layers.1.attention.wq.weight"), order.toString());
        assertTrue(order.indexOf("layers.1.attention.wq.weight") < order.indexOf("layers.0.attention.wq.weight"), order.toString());
        assertEquals("tok_embeddings.weight", order.get(family == ModelConfig.Family.GPT2 ? order.size() - 2 : order.size() - 1));
        // what was reported is what backward ends with: nothing touched a gradient after reporting it
        for (int i = 0; i < order.size(); i++)
            assertEquals(java.util.Arrays.toString(atReport.get(i)), java.util.Arrays.toString(cpu.toDoubles(model.parameters().get(order.get(i)).grad())),
                    order.get(i) + " changed after it was reported");
    }
}
