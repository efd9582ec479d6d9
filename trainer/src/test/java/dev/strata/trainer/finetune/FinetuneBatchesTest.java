package dev.strata.trainer.finetune;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Examples as padded rows: only trained tokens are targets, and a row's loss is the example's own, as if it were
 * alone and unpadded (padding after it is out of causal attention's sight).
 */
class FinetuneBatchesTest {
    static TokenizedExample example(int line, int[] ids, int promptTokens) {
        boolean[] trained = new boolean[ids.length];
        Arrays.fill(trained, promptTokens, ids.length, true);
        return new TokenizedExample(line, ids, trained);
    }

    @Test
    void longExamplesAreCutOrLeftOutAndCounted() {
        List<TokenizedExample> xs = List.of(example(1, new int[] {1, 2, 3}, 1), example(2, new int[] {1, 2, 3, 4, 5, 6}, 1), example(3, new int[] {4, 5, 6, 7, 8}, 5));
        var cut = FinetuneBatches.fit(xs, 4, true);
        assertEquals(1, cut.truncated());
        assertEquals(2, cut.examples().size(), "the third fits but trains on nothing");
        assertArrayEquals(new int[] {1, 2, 3, 4, 5}, cut.examples().get(1).ids());
        assertEquals("1 examples longer than 4 tokens cut to it", cut.describe(4));
        var left = FinetuneBatches.fit(xs, 4, false);
        assertEquals(1, left.dropped());
        assertEquals(1, left.examples().size());
    }

    @Test
    void aRowsLossIsItsExamplesAlone() {
        ModelConfig cfg = ModelConfig.llama(29, 16, 2, 4, 2, 24, 16);
        Transformer model = new Transformer(cfg, CpuBackend.INSTANCE, DType.F64);
        Initializer.initialize(model, 3);
        List<TokenizedExample> rows = List.of(example(1, new int[] {5, 9, 11, 2, 7, 3}, 2), example(2, new int[] {4, 8, 1}, 1));
        int b = 3, t = 8;
        var batch = FinetuneBatches.batch(rows, b, t, 0);
        assertArrayEquals(new int[] {-1, 11, 2, 7, 3, -1, -1, -1}, Arrays.copyOfRange(batch.targets(), 0, t), "the prompt's and the padding's positions train nothing");
        assertEquals(4 + 2, batch.trainedTokens());
        var cpu = CpuBackend.INSTANCE;
        Transformer.LossSum whole;
        try (Tensor ids = cpu.fromInts(batch.inputs(), b, t); Tensor targets = cpu.fromInts(batch.targets(), b, t)) {
            whole = model.loss(ids, targets, b, t);
        }
        double alone = 0;
        for (TokenizedExample x : rows) {
            var one = FinetuneBatches.batch(List.of(x), 1, x.ids().length - 1, 0);
            try (Tensor ids = cpu.fromInts(one.inputs(), 1, x.ids().length - 1); Tensor targets = cpu.fromInts(one.targets(), 1, x.ids().length - 1)) {
                alone += model.loss(ids, targets, 1, x.ids().length - 1).sum();
            }
        }
        assertEquals(batch.trainedTokens(), whole.count(), "the loss counts the trained tokens only");
        assertEquals(alone, whole.sum(), 1e-12, "padded rows give each example's own loss");
    }
}
