package dev.strata.runtime.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.DType;
import dev.strata.runtime.cpu.CpuBackend;
import java.util.EnumSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class PlacementTest {
    @Test
    void aParameterStartsWholeAndReplicated() {
        var p = new Parameter("w", Parameter.Kind.LINEAR_WEIGHT, CpuBackend.INSTANCE.zeros(DType.F32, 6, 4));
        assertTrue(p.placement().whole());
        assertArrayEquals(new int[] {6, 4}, p.placement().globalShape());
        assertEquals(EnumSet.of(MeshDim.DP, MeshDim.TP), p.placement().replicatedOver());
    }

    /** A column-parallel slice: rows 4..5 of a (6,4) weight on tp rank 2 of 3, replicated over dp only. */
    @Test
    void aSliceKnowsWhereItSits() {
        var slice = Placement.sharded(new int[] {6, 4}, 0, MeshDim.TP, 2, 3);
        assertArrayEquals(new int[] {2, 4}, slice.localShape());
        assertEquals(4, slice.offset());
        assertEquals(Set.of(MeshDim.DP), slice.replicatedOver());
        var p = new Parameter("w", Parameter.Kind.LINEAR_WEIGHT, CpuBackend.INSTANCE.zeros(DType.F32, 2, 4));
        p.place(slice);
        assertEquals(slice, p.placement());
        var wrong = new Parameter("v", Parameter.Kind.LINEAR_WEIGHT, CpuBackend.INSTANCE.zeros(DType.F32, 3, 4));
        var e = assertThrows(IllegalArgumentException.class, () -> wrong.place(slice));
        assertTrue(e.getMessage().contains("v holds [3, 4]"), e.getMessage());
    }

    @Test
    void impossiblePlacementsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> Placement.sharded(new int[] {5, 4}, 0, MeshDim.TP, 0, 2)); // 5 rows do not split in 2
        assertThrows(IllegalArgumentException.class, () -> Placement.sharded(new int[] {6, 4}, 2, MeshDim.TP, 0, 2)); // no dimension 2
        assertThrows(IllegalArgumentException.class, () -> Placement.sharded(new int[] {6, 4}, 0, MeshDim.TP, 3, 3)); // no slice 3
        assertThrows(IllegalArgumentException.class, () -> new Placement(new int[] {6}, 0, MeshDim.TP, 0, 2, EnumSet.of(MeshDim.TP)));
        assertThrows(IllegalArgumentException.class, () -> new Placement(new int[] {6}, -1, null, 0, 1, EnumSet.of(MeshDim.PP)));
    }

    /** take copies a slice's block out of the whole; move puts packed slices back: a (2,3,4) tensor split along dim 1 and dim 2. */
    @Test
    void slicesComeOutOfAndGoBackIntoTheWhole() {
        CpuBackend cpu = CpuBackend.INSTANCE;
        double[] values = new double[24];
        for (int i = 0; i < values.length; i++) values[i] = i;
        var whole = cpu.fromDoubles(values, DType.F64, 2, 3, 4);
        Placement rows = Placement.sharded(new int[] {2, 3, 4}, 1, MeshDim.TP, 2, 3), cols = Placement.sharded(new int[] {2, 3, 4}, 2, MeshDim.TP, 1, 2);
        dev.strata.runtime.Tensor r = cpu.zeros(DType.F64, rows.localShape()), c = cpu.zeros(DType.F64, cols.localShape());
        rows.take(whole, r);
        cols.take(whole, c);
        assertArrayEquals(new double[] {8, 9, 10, 11, 20, 21, 22, 23}, cpu.toDoubles(r));
        assertArrayEquals(new double[] {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23}, cpu.toDoubles(c));
        var back = cpu.zeros(DType.F64, 2, 3, 4);
        cols.move(1, c, 0, back, true);
        for (int i = 0; i < 24; i++) assertEquals(i % 4 >= 2 ? i : 0, cpu.toDoubles(back)[i], "element " + i);
    }
}
