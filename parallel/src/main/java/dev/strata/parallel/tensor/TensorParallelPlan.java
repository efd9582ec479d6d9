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
 * each region's input); the LM head (output) is column-parallel over the vocabulary, its logits left split for
 * {@link VocabParallel}'s loss. A split never cuts a grain (attention's heads): where a layer has fewer grains than tp
 * ranks (grouped-query attention's key/value heads), each grain is held by tp/grains neighbouring ranks, whose
 * gradients of it {@link TensorParallelSync} sums. Layers the plan does not name are made by the base maker, whole
 * on every rank.
 */
public record TensorParallelPlan(Map<String, Style> styles, Map<String, Integer> grains) {
    public enum Style { COLUMN, ROW }

    public TensorParallelPlan {
        styles = Map.copyOf(styles);
        grains = Map.copyOf(grains);
    }

    /** Megatron-LM's layout for heads of headDim features. */
    public static TensorParallelPlan megatron(int headDim) {
        Map<String, Style> s = new LinkedHashMap<>();
        for (String c : new String[] {"attention.wq", "attention.wk", "attention.wv", "feed_forward.w1", "feed_forward.w3", "output"}) s.put(c, Style.COLUMN);
        for (String r : new String[] {"attention.wo", "feed_forward.w2"}) s.put(r, Style.ROW);
        Map<String, Integer> g = new LinkedHashMap<>();
        for (String h : new String[] {"attention.wq", "attention.wk", "attention.wv", "attention.wo"}) g.put(h, headDim);
        return new TensorParallelPlan(s, g);
    }

    public Style styleOf(String layer) { return byName(styles, layer); }

    private static <V> V byName(Map<String, V> m, String layer) {
        for (var e : m.entrySet()) if (layer.equals(e.getKey()) || layer.endsWith("." + e.getKey())) return e.getValue();
        return null;
    }

    /**
     * Makes this rank's slices through base (dense or FP8, at the slice's size; parameters zeros until initialised,
     * each placed in the whole tensor, so an initialiser can draw the whole weight once and keep its slice); other
     * layers come from base whole.
     */
    public Linear.Maker maker(Communicator tp, Backend backend, DType dtype, Linear.Maker base) { return maker(tp, null, backend, dtype, base); }

    /** As above, the regions' edges gathering and scattering row shards under sequence parallelism (sp; null: off). */
    public Linear.Maker maker(Communicator tp, SequenceParallel sp, Backend backend, DType dtype, Linear.Maker base) {
        Map<String, SharedInput> regions = new HashMap<>(); // by the name of the module whose input they share
        int rank = tp.rank(), size = tp.size();
        return (name, in, out, bias) -> {
            Style style = styleOf(name);
            if (style == null || size == 1) return base.make(name, in, out, bias);
            int split = style == Style.COLUMN ? out : in, grain = java.util.Objects.requireNonNullElse(byName(grains, name), 1);
            int units = split / grain;
            boolean shared = style == Style.COLUMN && units < size && size % units == 0 && split % grain == 0;
            if (split % grain != 0 || units % size != 0 && !shared)
                throw new IllegalArgumentException("layer " + name + ": " + (style == Style.COLUMN ? "out" : "in") + " features " + split
                        + (grain > 1 ? " (" + units + " heads of " + grain + ")" : "") + " do not split over parallel.tp = " + size);
            int shards = shared ? units : size, shard = rank / (size / shards);
            if (style == Style.COLUMN) {
                Linear local = base.make(name, in, out / shards, bias);
                place(local, new int[] {out, in}, 0, shard, shards);
                String module = name.substring(0, Math.max(0, name.lastIndexOf('.')));
                return new ColumnParallelLinear(local, regions.computeIfAbsent(module, m -> new SharedInput(tp, sp)), tp);
            }
            Linear local = base.make(name, in / shards, out, false); // the bias is added once, after the sum
            place(local, new int[] {out, in}, 1, shard, shards);
            Parameter b = bias ? new Parameter(name + ".bias", Parameter.Kind.BIAS, backend.zeros(dtype, out)) : null;
            return new RowParallelLinear(local, b, tp, sp);
        };
    }

    /**
     * LoRA over tensor-parallel layers. Column-parallel: B (out, r) splits with the layer's output rows; A (r, in)
     * stays whole, each rank's gradient of it a part that {@link TensorParallelSync} sums. Row-parallel: A splits
     * with the layer's input columns, x·Aᵀ is summed over tp before B, and B (out, r) stays whole with a whole gradient.
     */
    public static void placeAdapters(Iterable<Linear> linears, Communicator tp) {
        for (Linear l : linears) {
            Parameter weight = null, a = null, b = null;
            for (Parameter p : l.parameters()) {
                if (p.kind() == Parameter.Kind.LINEAR_WEIGHT) weight = p;
                if (p.kind() == Parameter.Kind.LORA_A) a = p;
                if (p.kind() == Parameter.Kind.LORA_B) b = p;
            }
            if (b == null || weight == null || weight.placement().whole()) continue;
            Placement w = weight.placement();
            if (w.shardedDim() == 0) {
                b.place(Placement.sharded(new int[] {w.globalShape()[0], b.shape()[1]}, 0, MeshDim.TP, w.shard(), w.shards()));
            } else {
                a.place(Placement.sharded(new int[] {a.shape()[0], w.globalShape()[1]}, 1, MeshDim.TP, w.shard(), w.shards()));
                ((dev.strata.runtime.nn.LoraLinear) l).completeProjection(h -> tp.allReduce(h, dev.strata.parallel.comm.ReduceOp.SUM).await());
            }
        }
    }

    /** Places a slice's weight (out,in) in the whole one, and a column slice's bias with it. */
    private static void place(Linear local, int[] global, int dim, int shard, int shards) {
        for (Parameter p : local.parameters()) {
            if (p.kind() == Parameter.Kind.LINEAR_WEIGHT) p.place(Placement.sharded(global, dim, MeshDim.TP, shard, shards));
            else if (p.kind() == Parameter.Kind.BIAS) p.place(Placement.sharded(new int[] {global[0]}, 0, MeshDim.TP, shard, shards));
        }
    }

}
