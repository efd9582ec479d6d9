package dev.strata.trainer.data;

import java.util.HashMap;
import java.util.Map;

/**
 * The loss of the best context-free model: each validation target scored by its frequency among the training
 * targets (add-one smoothed over the tokens seen). A language model that learnt anything beats it.
 */
public final class UnigramBaseline {
    private UnigramBaseline() {}

    public static double loss(TokenDataset train, TokenDataset val) {
        Map<Integer, Long> counts = new HashMap<>();
        long total = forEachTarget(train, tok -> counts.merge(tok, 1L, Long::sum));
        double denominator = total + counts.size() + 1;
        double[] sum = {0};
        long n = forEachTarget(val, tok -> sum[0] -= Math.log((counts.getOrDefault(tok, 0L) + 1) / denominator));
        return sum[0] / n;
    }

    private static long forEachTarget(TokenDataset d, java.util.function.IntConsumer f) {
        int t = d.seqLen();
        int[] in = new int[t], out = new int[t];
        long n = 0;
        for (long w = 0; w < d.windows(); w++) {
            d.window(w, in, out, 0);
            for (int tok : out) f.accept(tok);
            n += t;
        }
        return n;
    }
}
