package dev.strata.cluster;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Which node each rank of a job runs on: ranks in mesh order (tp fastest, then dp, then pp), a tensor-parallel group's
 * tp consecutive ranks always on one node (their collectives run every layer), the nodes with the most free slots filled first.
 */
final class RankPlacement {
    private RankPlacement() {}

    /** nodes[r] for each of ranks ranks in groups of tp, or null when the free slots (by node, in join order) cannot hold them. */
    static String[] place(int ranks, int tp, Map<String, Integer> free) {
        Map<String, Integer> left = new LinkedHashMap<>(free);
        String[] nodes = new String[ranks];
        for (int first = 0; first < ranks; first += tp) {
            String best = null;
            for (var e : left.entrySet()) if (e.getValue() >= tp && (best == null || e.getValue() > left.get(best))) best = e.getKey();
            if (best == null) return null;
            left.merge(best, -tp, Integer::sum);
            for (int r = first; r < first + tp; r++) nodes[r] = best;
        }
        return nodes;
    }

    /** The free slots of nodes as a sentence, for a job that waits. */
    static String describe(Map<String, Integer> free) {
        List<String> parts = new ArrayList<>();
        free.forEach((n, s) -> parts.add(n + " " + s));
        int total = free.values().stream().mapToInt(Integer::intValue).sum();
        return total + " free on " + free.size() + " node(s)" + (parts.isEmpty() ? "" : " (" + String.join(", ", parts) + ")");
    }
}
