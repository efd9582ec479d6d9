package dev.strata.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.nn.MeshDim;
import org.junit.jupiter.api.Test;

class DeviceMeshTest {
    /** Megatron-LM's order: tp fastest, then dp, then pp. */
    @Test
    void ranksAreLaidOutTpFastestThenDpThenPp() {
        DeviceMesh m = new DeviceMesh(2, 3, 4); // 24 ranks
        assertEquals(24, m.size());
        for (int r = 0; r < m.size(); r++) assertEquals(r, m.rank(m.coordinates(r)));
        assertEquals(new DeviceMesh.Coordinates(0, 0, 1), m.coordinates(1));
        assertEquals(new DeviceMesh.Coordinates(1, 0, 0), m.coordinates(4));
        assertEquals(new DeviceMesh.Coordinates(0, 1, 0), m.coordinates(8));
        assertArrayEquals(new int[] {12, 13, 14, 15}, m.group(13, MeshDim.TP).ranks(), "tp neighbours are consecutive ranks");
        assertArrayEquals(new int[] {9, 13}, m.group(13, MeshDim.DP).ranks());
        assertArrayEquals(new int[] {1, 9, 17}, m.group(9, MeshDim.PP).ranks());
        assertArrayEquals(new int[] {8, 9, 10, 11, 12, 13, 14, 15}, m.group(13, MeshDim.DP, MeshDim.TP).ranks());
        assertEquals("dp[pp=1,tp=1]", m.group(13, MeshDim.DP).name());
        assertEquals(1, m.group(13, MeshDim.DP).indexOf(13));
    }

    @Test
    void theGroupsOfADimensionCoverEveryRankOnce() {
        DeviceMesh m = new DeviceMesh(4, 2, 2);
        for (MeshDim[] dims : new MeshDim[][] {{MeshDim.DP}, {MeshDim.PP}, {MeshDim.TP}, {MeshDim.DP, MeshDim.TP}, {}}) {
            var groups = m.groups(dims);
            int expected = 1;
            for (MeshDim d : dims) expected *= m.size(d);
            boolean[] seen = new boolean[m.size()];
            for (var g : groups) {
                assertEquals(expected, g.size());
                for (int r : g.ranks()) {
                    assertTrue(!seen[r], "rank " + r + " in two groups");
                    seen[r] = true;
                }
            }
            assertEquals(m.size() / expected, groups.size());
        }
    }

    @Test
    void badLayoutsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new DeviceMesh(0, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> new DeviceMesh(2, 1, 1).coordinates(2));
    }
}
