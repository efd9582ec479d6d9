package dev.strata.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Tensor-parallel groups stay on one node; the emptiest node fills first; what does not fit is null. */
class RankPlacementTest {
    static Map<String, Integer> free(Object... kv) {
        Map<String, Integer> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) m.put((String) kv[i], (Integer) kv[i + 1]);
        return m;
    }

    @Test
    void groupsStayOnOneNode() {
        assertArrayEquals(new String[] {"b", "b", "a", "a"}, RankPlacement.place(4, 2, free("a", 2, "b", 3)));
        assertArrayEquals(new String[] {"b", "b", "a", "a"}, RankPlacement.place(4, 2, free("a", 2, "b", 4)), "the emptiest first");
        assertNull(RankPlacement.place(4, 2, free("a", 3, "b", 1)), "a group of 2 does not split over a and b");
        assertArrayEquals(new String[] {"a", "b", "c", "d"}, RankPlacement.place(4, 1, free("a", 1, "b", 1, "c", 1, "d", 1)));
        assertNull(RankPlacement.place(5, 1, free("a", 1, "b", 1, "c", 1, "d", 1)));
    }
}
