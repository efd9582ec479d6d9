package dev.strata.runtime.nn;

import dev.strata.runtime.Tensor;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.Set;

/**
 * Where a parameter's tensor sits among the ranks: the whole (global) tensor's shape; the dimension split evenly
 * over one mesh dimension ({@code shardedDim}, -1 for none) and which of the {@code shards} slices this rank holds;
 * and the mesh dimensions whose ranks hold identical copies of it. Fewer shards than the mesh dimension has ranks
 * means each slice is held by that many neighbouring ranks (a key/value head shared by several tp ranks). Checkpoints, gradient clipping and ZeRO read this
 * instead of guessing from names. Pipeline stages hold different layers, so no parameter is replicated over pp.
 */
public record Placement(int[] globalShape, int shardedDim, MeshDim shardedOver, int shard, int shards, Set<MeshDim> replicatedOver) {
    public Placement {
        globalShape = globalShape.clone();
        replicatedOver = replicatedOver.isEmpty() ? Set.of() : Set.copyOf(EnumSet.copyOf(replicatedOver));
        if (shardedDim < -1 || shardedDim >= globalShape.length)
            throw new IllegalArgumentException("dimension " + shardedDim + " does not exist in " + Arrays.toString(globalShape));
        if (shardedDim >= 0 && (shardedOver == null || shards < 1 || shard < 0 || shard >= shards || globalShape[shardedDim] % shards != 0))
            throw new IllegalArgumentException("cannot take slice " + shard + " of " + shards + " along dimension " + shardedDim + " of "
                    + Arrays.toString(globalShape) + " over " + shardedOver);
        if (shardedOver != null && replicatedOver.contains(shardedOver))
            throw new IllegalArgumentException("a tensor sharded over " + shardedOver + " is not also replicated over it");
        if (replicatedOver.contains(MeshDim.PP)) throw new IllegalArgumentException("pipeline stages hold different layers: nothing is replicated over pp");
    }

    /** The whole tensor's shape (a copy: a placement never changes). */
    @Override public int[] globalShape() { return globalShape.clone(); }

    /** The whole tensor on every rank: replicated over data and tensor parallelism (what a layer makes by default). */
    public static Placement replicated(int[] shape) { return new Placement(shape, -1, null, 0, 1, EnumSet.of(MeshDim.DP, MeshDim.TP)); }

    /** Slice {@code shard} of {@code shards} along dim, split over the mesh dimension over, replicated over dp. */
    public static Placement sharded(int[] globalShape, int dim, MeshDim over, int shard, int shards) {
        return new Placement(globalShape, dim, over, shard, shards, EnumSet.complementOf(EnumSet.of(over, MeshDim.PP)));
    }

    /** Whether this rank holds the whole tensor. */
    public boolean whole() { return shardedDim < 0; }

    /** The shape of the slice this rank holds. */
    public int[] localShape() {
        int[] s = globalShape.clone();
        if (shardedDim >= 0) s[shardedDim] /= shards;
        return s;
    }

    /** Copies the part of whole (the global shape) that this rank holds into slice (the local shape). */
    public void take(Tensor whole, Tensor slice) {
        if (whole()) slice.backend().copyInto(whole, slice);
        else move(shard, slice, 0, whole, false);
    }

    /**
     * Moves slice {@code of}'s elements between a packed slice (local shape, from element at of packed) and whole:
     * per index of the dimensions before the sharded one, a run of local × inner elements.
     */
    public void move(int of, Tensor packed, long at, Tensor whole, boolean intoWhole) {
        int[] local = localShape();
        long inner = 1, outer = 1;
        for (int d = shardedDim + 1; d < globalShape.length; d++) inner *= globalShape[d];
        for (int d = 0; d < shardedDim; d++) outer *= globalShape[d];
        long run = local[shardedDim] * inner;
        for (long o = 0; o < outer; o++) {
            long w = (o * globalShape[shardedDim] + (long) of * local[shardedDim]) * inner, p = at + o * run;
            if (intoWhole) packed.backend().copyElements(packed, p, whole, w, run);
            else packed.backend().copyElements(whole, w, packed, p, run);
        }
    }

    /** Where this rank's slice starts along the sharded dimension (0 when whole). */
    public int offset() { return whole() ? 0 : shard * (globalShape[shardedDim] / shards); }

    @Override public boolean equals(Object o) {
        return o instanceof Placement p && Arrays.equals(globalShape, p.globalShape) && shardedDim == p.shardedDim && shardedOver == p.shardedOver
                && shard == p.shard && shards == p.shards && replicatedOver.equals(p.replicatedOver);
    }

    @Override public int hashCode() { return Arrays.hashCode(globalShape) * 31 + Integer.hashCode(shardedDim) * 7 + shard; }

    @Override public String toString() {
        return Arrays.toString(globalShape) + (whole() ? "" : " slice " + shard + "/" + shards + " of dim " + shardedDim + " over " + shardedOver)
                + " replicated over " + replicatedOver;
    }
}
