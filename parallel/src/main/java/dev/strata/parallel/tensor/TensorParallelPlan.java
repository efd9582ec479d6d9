package dev.strata.parallel.tensor;

import dev.strata.parallel.comm.Communicator;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.MeshDim;
import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.nn.Placement;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Which linears are split over tp and how, keyed by the end of their names (torchtitan's parallelize plan):
 * Megatron-LM's layout makes attention.wq/wk/wv and feed_forward.w1/w3 column-parallel and attention.wo and
 * feed_forward.w2 row-parallel, so each block needs one all-reduce forward (after wo, after w2) and one backward (at
 * each region's input). Layers the plan does not name are made by the base maker, whole on every rank.
 */
public record TensorParallelPlan(Map<String, Style> styles) {
    public enum Style { COLUMN, ROW }

    public TensorParallelPlan {
        styles = Map.copyOf(styles);
    }

    public static TensorParallelPlan megatron() {
        Map<String, Style> s = new LinkedHashMap<>();
        for (String c : new String[] {"attention.wq", "attention.wk", "attention.wv", "feed_forward.w1", "feed_forward.w3"}) s.put(c, Style.COLUMN);
        for (String r : new String[] {"attention.wo", "feed_forward.w2"}) s.put(r, Style.ROW);
        return new TensorParallelPlan(s);
    }

    public Style styleOf(String layer) {
        for (var e : styles.entrySet()) if (layer.equals(e.getKey()) || layer.endsWith("." + e.getKey())) return e.getValue();
        return null;
    }

    /**
     * Makes this rank's slices (parameters in dtype, zeros until initialised, each placed in the whole tensor, so an
     * initialiser can draw the whole weight once and keep its slice); other layers come from base.
     */
    public Linear.Maker maker(Communicator tp, Backend backend, DType dtype, Linear.Maker base) {
        Map<String, SharedInput> regions = new HashMap<>(); // by the name of the module whose input they share
        int rank = tp.rank(), size = tp.size();
        return (name, in, out, bias) -> {
            Style style = styleOf(name);
            if (style == null || size == 1) return base.make(name, in, out, bias);
            int split = style == Style.COLUMN ? out : in;
            if (split % size != 0)
                throw new IllegalArgumentException("layer " + name + ": " + (style == Style.COLUMN ? "out" : "in") + " features " + split
                        + " do not split over parallel.tp = " + size);
            if (style == Style.COLUMN) {
                Parameter w = slice(name + ".weight", Parameter.Kind.LINEAR_WEIGHT, backend, dtype, new int[] {out, in}, 0, rank, size);
                Parameter b = bias ? slice(name + ".bias", Parameter.Kind.BIAS, backend, dtype, new int[] {out}, 0, rank, size) : null;
                String module = name.substring(0, Math.max(0, name.lastIndexOf('.')));
                return new ColumnParallelLinear(w, b, regions.computeIfAbsent(module, m -> new SharedInput(tp)));
            }
            Parameter w = slice(name + ".weight", Parameter.Kind.LINEAR_WEIGHT, backend, dtype, new int[] {out, in}, 1, rank, size);
            Parameter b = bias ? new Parameter(name + ".bias", Parameter.Kind.BIAS, backend.zeros(dtype, out)) : null;
            return new RowParallelLinear(w, b, tp);
        };
    }

    private static Parameter slice(String name, Parameter.Kind kind, Backend backend, DType dtype, int[] global, int dim, int rank, int size) {
        Placement where = Placement.sharded(global, dim, MeshDim.TP, rank, size);
        Parameter p = new Parameter(name, kind, backend.zeros(dtype, where.localShape()));
        p.place(where);
        return p;
    }
}
