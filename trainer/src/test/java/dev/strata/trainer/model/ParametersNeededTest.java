package dev.strata.trainer.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Forward announces every parameter before it reads it, the embeddings first, the blocks in order, the head last:
 * an optimizer still writing the weights (offload's update into the next forward) makes each layer wait there. Every
 * weight is NaN until announced, so one read too early poisons the logits; the training and the cached forward both.
 */
class ParametersNeededTest {
    static final CpuBackend CPU = CpuBackend.INSTANCE;

    @ParameterizedTest
    @EnumSource(ModelConfig.Family.class)
    void everyParameterIsAnnouncedBeforeForwardReadsIt(ModelConfig.Family family) {
        Transformer model = new Transformer(KvCacheTest.config(family), CPU, DType.F64);
        Initializer.initialize(model, 2);
        int[] ids = {1, 5, 9, 2, 7, 3};
        Supplier<double[]> whole = () -> {
            try (Tensor x = CPU.fromInts(ids, 1, ids.length); Tensor logits = model.forward(x, 1, ids.length)) {
                model.discardSaved();
                return CPU.toDoubles(logits);
            }
        };
        Supplier<double[]> cached = () -> {
            try (KvCache cache = model.kvCache(1, ids.length); Tensor x = CPU.fromInts(ids, 1, ids.length); Tensor logits = model.forwardCached(x, 1, ids.length, cache)) {
                return CPU.toDoubles(logits);
            }
        };
        for (Supplier<double[]> forward : List.of(whole, cached)) {
            double[] expected = forward.get();
            List<String> order = withheldUntilAnnounced(model, forward, expected);
            assertEquals(new LinkedHashSet<>(model.parameters().keySet()), new LinkedHashSet<>(order), "every parameter announced: " + order);
            assertEquals("tok_embeddings.weight", order.get(0));
            assertTrue(order.indexOf("layers.0.attention.wq.weight") < order.indexOf("layers.1.attention.wq.weight"), order.toString());
            assertTrue(order.indexOf("layers.1.feed_forward.w2.weight") < order.indexOf("norm.weight"), order.toString());
        }
    }

    /** Runs forward with every weight NaN until the model announces it; its logits must be expected. Returns the announced names in order. */
    private static List<String> withheldUntilAnnounced(Transformer model, Supplier<double[]> forward, double[] expected) {
        Map<Parameter, double[]> values = new HashMap<>();
        for (Parameter p : model.parameters().values()) {
            double[] v = CPU.toDoubles(p.value());
            values.put(p, v);
            write(p, new double[v.length], Double.NaN);
        }
        List<String> order = new ArrayList<>();
        Set<Parameter> back = new java.util.HashSet<>();
        model.onParametersNeeded(ps -> {
            for (Parameter p : ps) {
                if (back.add(p)) write(p, values.get(p), 0);
                order.add(p.name());
            }
        });
        try {
            assertArrayEquals(expected, forward.get(), "a parameter was read before it was announced");
        } finally {
            model.onParametersNeeded(null);
            values.forEach((p, v) -> write(p, v, 0));
        }
        return order;
    }

    /** p's value from v, each element plus fill (NaN poisons it). */
    private static void write(Parameter p, double[] v, double fill) {
        double[] out = v.clone();
        for (int i = 0; i < out.length; i++) out[i] += fill;
        try (Tensor t = CPU.fromDoubles(out, p.value().dtype(), p.shape())) {
            CPU.copyInto(t, p.value());
        }
        p.markUpdated();
    }
}
