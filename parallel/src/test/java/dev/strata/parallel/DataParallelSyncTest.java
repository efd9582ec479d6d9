package dev.strata.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.parallel.comm.InProcessCommunicator;
import dev.strata.runtime.DType;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.Parameter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class DataParallelSyncTest {
    /** Every parameter has exactly one owner, and the largest share is within one parameter of the even share. */
    @Test
    void ownersAreBalancedBySize() {
        List<Parameter> ps = new ArrayList<>();
        int[] sizes = {50, 3, 3, 40, 40, 7, 7, 7, 100, 1};
        for (int i = 0; i < sizes.length; i++) ps.add(new Parameter("p" + i, Parameter.Kind.LINEAR_WEIGHT, CpuBackend.INSTANCE.zeros(DType.F32, sizes[i])));
        for (int ranks : new int[] {1, 2, 3, 4}) {
            Map<String, Integer> owners = DataParallelSync.balance(ps, ranks);
            assertEquals(ps.size(), owners.size());
            long[] load = new long[ranks];
            for (int i = 0; i < sizes.length; i++) load[owners.get("p" + i)] += sizes[i];
            long total = java.util.Arrays.stream(sizes).sum(), max = java.util.Arrays.stream(load).max().orElseThrow();
            assertTrue(max <= total / ranks + 100, ranks + " ranks: " + java.util.Arrays.toString(load));
            assertEquals(owners, DataParallelSync.balance(ps, ranks), "the same plan on every rank");
        }
    }

    @Test
    void zeroLevelsAreChecked() {
        var comm = InProcessCommunicator.group("dp", 1, Duration.ofSeconds(1)).get(0);
        assertThrows(IllegalArgumentException.class, () -> new DataParallelSync(comm, 3));
        var sync = new DataParallelSync(comm, 1);
        var p = new Parameter("w", Parameter.Kind.LINEAR_WEIGHT, CpuBackend.INSTANCE.zeros(DType.F32, 2));
        var e = assertThrows(IllegalStateException.class, () -> sync.updates(p));
        assertTrue(e.getMessage().contains("no owner"), e.getMessage());
        comm.close();
    }
}
