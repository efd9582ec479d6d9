package dev.strata.offload;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.strata.runtime.DType;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.Parameter;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The windows' first subgroups brought up during backward: the update uses those copies, a subgroup whose state
 * the store writes back (disk) is not brought up early, and a checkpoint loaded after them makes them stale.
 */
class DeviceWindowsTest {
    static final CpuBackend CPU = CpuBackend.INSTANCE;
    static final int N = 64; // elements a subgroup

    /** Every subgroup's moments in RAM, those named written back to disk. */
    record Store(List<StateBlock> blocks, List<Integer> onDisk) implements StateStore {
        @Override public String describe() { return "test"; }

        @Override public StateBlock open(Subgroup k) { return blocks.get(k.index()); }

        @Override public boolean writesBack(Subgroup k) { return onDisk.contains(k.index()); }

        @Override public void close() { blocks.forEach(StateBlock::close); }
    }

    @Test
    void firstSubgroupsComeUpDuringBackward() {
        List<Subgroup> gpu = new ArrayList<>();
        List<StateBlock> blocks = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            gpu.add(Subgroup.of(i, List.of(new Parameter("p" + i, Parameter.Kind.LINEAR_WEIGHT, CPU.zeros(DType.F32, N))), true));
            blocks.add(new StateBlock(CPU, N * 4L));
            fill(blocks.get(i), i);
        }
        try (Store store = new Store(blocks, List.of(2)); DeviceWindows windows = new DeviceWindows(CPU, DType.F32, gpu)) {
            windows.bringUpEarly(store);
            fill(blocks.get(0), 100); // what the host holds now is not what came up
            fill(blocks.get(2), 102);
            windows.bringUp(gpu.get(0), blocks.get(0));
            assertEquals(0, first(windows, gpu.get(0)), "subgroup 0 came up during backward: its update reads that copy");
            windows.bringUp(gpu.get(1), blocks.get(1));
            assertEquals(1, first(windows, gpu.get(1)));
            windows.bringUp(gpu.get(2), blocks.get(2));
            assertEquals(102, first(windows, gpu.get(2)), "subgroup 2's state is on disk: it comes up at update time");
            windows.sendBack(gpu.get(0), blocks.get(0)); // the window keeps its event
            windows.bringUp(gpu.get(3), blocks.get(3)); // the fourth takes the first's window
            assertEquals(3, first(windows, gpu.get(3)));

            windows.bringUpEarly(store); // the next step's: window 0 takes subgroup 0 again
            fill(blocks.get(0), 200); // a checkpoint loaded
            windows.forgetEarly();
            windows.bringUp(gpu.get(0), blocks.get(0));
            assertEquals(200, first(windows, gpu.get(0)), "the checkpoint's moments, not the stale copy");
        }
    }

    /** Moments m = base + i, v = base + 2i at element i. */
    static void fill(StateBlock b, int base) {
        var m = b.m().bytes().duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        var v = b.v().bytes().duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        for (int i = 0; i < N; i++) {
            m.put(i, base + i);
            v.put(i, base + 2 * i);
        }
    }

    /** The window's first moment of k, checked against its second moments' pattern. */
    static double first(DeviceWindows windows, Subgroup k) {
        double[] m = CPU.toDoubles(windows.m(k)), v = CPU.toDoubles(windows.v(k));
        for (int i = 0; i < N; i++) {
            assertEquals(m[0] + i, m[i], "m[" + i + "]");
            assertEquals(m[0] + 2 * i, v[i], "v[" + i + "]");
        }
        return m[0];
    }
}
