package dev.strata.parallel;

import dev.strata.runtime.nn.MeshDim;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

/**
 * The ranks of a job laid out as dp × pp × tp, Megatron-LM's order: tp varies fastest (its ranks are neighbours, so
 * they stay inside a host and its NVLink), then dp, then pp: rank = tp + TP·(dp + DP·pp). A process group is the set
 * of ranks that differ only along some dimensions: the "tp" group of a rank is its TP neighbours, the "dp" group the
 * ranks holding the same layers and the same tensor slices, "dp+tp" both.
 */
public record DeviceMesh(int dp, int pp, int tp) {

    /** Where a rank sits along each dimension. */
    public record Coordinates(int dp, int pp, int tp) {
        int along(MeshDim d) {
            return switch (d) {
                case DP -> dp;
                case PP -> pp;
                case TP -> tp;
            };
        }
    }

    /**
     * The ranks of one group in order (the group's rank i is global rank {@code ranks[i]}), named by its dimensions
     * and the coordinates it shares, e.g. "dp[pp=0,tp=1]".
     */
    public record Group(String name, Set<MeshDim> dims, int[] ranks) {
        public int size() { return ranks.length; }

        /** This global rank's index within the group. */
        public int indexOf(int globalRank) {
            for (int i = 0; i < ranks.length; i++) if (ranks[i] == globalRank) return i;
            throw new IllegalArgumentException("rank " + globalRank + " is not in group " + name);
        }
    }

    public DeviceMesh {
        if (dp < 1 || pp < 1 || tp < 1)
            throw new IllegalArgumentException("parallel.dp, pp and tp must each be 1 or more, got dp=" + dp + " pp=" + pp + " tp=" + tp);
        if ((long) dp * pp * tp > 1 << 20) throw new IllegalArgumentException("a mesh of " + (long) dp * pp * tp + " ranks is too large");
    }

    public int size() { return dp * pp * tp; }

    public int size(MeshDim d) {
        return switch (d) {
            case DP -> dp;
            case PP -> pp;
            case TP -> tp;
        };
    }

    public Coordinates coordinates(int rank) {
        if (rank < 0 || rank >= size()) throw new IllegalArgumentException("rank " + rank + " is outside a mesh of " + size());
        return new Coordinates(rank / tp % dp, rank / (tp * dp), rank % tp);
    }

    public int rank(Coordinates c) {
        if (c.dp() < 0 || c.dp() >= dp || c.pp() < 0 || c.pp() >= pp || c.tp() < 0 || c.tp() >= tp)
            throw new IllegalArgumentException(c + " is outside the mesh dp=" + dp + " pp=" + pp + " tp=" + tp);
        return c.tp() + tp * (c.dp() + dp * c.pp());
    }

    /** The group of {@code rank} along {@code dims}: every rank that agrees with it on the other dimensions. */
    public Group group(int rank, MeshDim... dims) {
        Set<MeshDim> along = dims.length == 0 ? EnumSet.noneOf(MeshDim.class) : EnumSet.of(dims[0], dims);
        Coordinates me = coordinates(rank);
        List<Integer> members = new ArrayList<>();
        for (int r = 0; r < size(); r++) {
            Coordinates c = coordinates(r);
            boolean same = true;
            for (MeshDim d : MeshDim.values()) if (!along.contains(d) && c.along(d) != me.along(d)) same = false;
            if (same) members.add(r);
        }
        StringBuilder name = new StringBuilder();
        for (MeshDim d : along) name.append(name.isEmpty() ? "" : "+").append(d.name().toLowerCase(java.util.Locale.ROOT));
        if (along.isEmpty()) name.append("self");
        StringBuilder fixed = new StringBuilder();
        for (MeshDim d : MeshDim.values())
            if (!along.contains(d) && size(d) > 1) fixed.append(fixed.isEmpty() ? "" : ",").append(d.name().toLowerCase(java.util.Locale.ROOT)).append('=').append(me.along(d));
        if (!fixed.isEmpty()) name.append('[').append(fixed).append(']');
        return new Group(name.toString(), along, members.stream().mapToInt(Integer::intValue).toArray());
    }

    /** Every distinct group along {@code dims}, each once (for creating communicators). */
    public List<Group> groups(MeshDim... dims) {
        List<Group> all = new ArrayList<>();
        boolean[] seen = new boolean[size()];
        for (int r = 0; r < size(); r++) {
            if (seen[r]) continue;
            Group g = group(r, dims);
            for (int m : g.ranks()) seen[m] = true;
            all.add(g);
        }
        return all;
    }
}
