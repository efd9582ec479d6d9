package dev.strata.parallel.pipeline;

import java.util.Arrays;
import java.util.List;

/**
 * Which layers each pipeline stage holds: as parallel.pp_layers says, or balanced so the slowest stage is as fast
 * as it can be, counting the embedding's cost on the first stage and the LM head's (and loss's) on the last.
 */
public final class StageSplit {
    private StageSplit() {}

    /** The first layer of each stage and, last, the layer count: stage s holds [first[s], first[s+1]). */
    public static int[] firstLayers(List<Integer> counts, int layers) {
        int[] first = new int[counts.size() + 1];
        for (int s = 0; s < counts.size(); s++) first[s + 1] = first[s] + counts.get(s);
        if (first[counts.size()] != layers)
            throw new IllegalArgumentException("parallel.pp_layers " + counts + " adds up to " + first[counts.size()] + " layers, the model has " + layers);
        return first;
    }

    /**
     * Contiguous layer counts for stages stages, each at least one layer, minimising the largest stage's cost
     * (layer cost each, plus embeddingCost on stage 0 and headCost on the last): a small dynamic programme.
     */
    public static List<Integer> balanced(int layers, int stages, double layerCost, double embeddingCost, double headCost) {
        if (stages > layers) throw new IllegalArgumentException("parallel.pp = " + stages + " stages need at least as many layers; the model has " + layers);
        // best[s][l]: the least possible largest cost of stages 0..s holding layers [0, l)
        double[][] best = new double[stages][layers + 1];
        int[][] cut = new int[stages][layers + 1];
        for (double[] row : best) Arrays.fill(row, Double.POSITIVE_INFINITY);
        for (int l = 1; l <= layers; l++) best[0][l] = embeddingCost + l * layerCost + (stages == 1 ? headCost : 0);
        for (int s = 1; s < stages; s++)
            for (int l = s + 1; l <= layers; l++)
                for (int from = s; from < l; from++) {
                    double cost = (l - from) * layerCost + (s == stages - 1 ? headCost : 0);
                    double worst = Math.max(best[s - 1][from], cost);
                    if (worst < best[s][l]) {
                        best[s][l] = worst;
                        cut[s][l] = from;
                    }
                }
        Integer[] counts = new Integer[stages];
        for (int s = stages - 1, l = layers; s >= 0; s--) {
            int from = s == 0 ? 0 : cut[s][l];
            counts[s] = l - from;
            l = from;
        }
        return List.of(counts);
    }
}
