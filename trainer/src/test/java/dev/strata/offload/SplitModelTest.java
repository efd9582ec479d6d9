package dev.strata.offload;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Deep Optimizer States' split from measured rates: the share that balances the link against the CPU, and what moves it. */
class SplitModelTest {
    // an H200 host's figures: 53 GB/s each way, CPU AdamW 2.5 G params/s beside copies, the device's 50 G/s; f32 state
    static final SplitModel H200 = new SplitModel(53e9, 53e9, 2.5e9, 50e9, 4);
    static final long N = 1_000_000_000L;

    @Test
    void theSplitBalancesTheLinkAgainstTheCpu() {
        double f = H200.bestFraction(N, 0, 0);
        assertTrue(f > 0 && f < 1, "some of each side: " + f);
        for (double other = 0; other <= 1.0001; other += 0.01)
            assertTrue(H200.seconds(N, 0, f, 0) <= H200.seconds(N, 0, other, 0) + 1e-12, "the best share " + f + " against " + other);
        // at the best share, the CPU's time and the up link's (with the device's work) are within one hundredth of each other
        double cpu = N * (1 - f) / 2.5e9, up = N * 4 * (1 + f) / 53e9 + N * f / 50e9, step = 0.01 * N * (1 / 2.5e9 + 4 / 53e9 + 1 / 50e9);
        assertEquals(cpu, up, step, "cpu " + cpu + " s, link up " + up + " s");
        assertEquals(Math.max(cpu, up), H200.seconds(N, 0, f, 0), 1e-12, "the longest of the three is the update's time");
    }

    @Test
    void stateKeptOnTheDeviceAndGradientsComingDownLateMoveTheSplit() {
        double f = H200.bestFraction(N, 0, 0);
        // the GPU tier's elements take the device's time: less of the offloaded share goes to the GPU
        assertTrue(H200.bestFraction(N, 4 * N, 0) < f, H200.bestFraction(N, 4 * N, 0) + " against " + f);
        // weights and gradients that come down at update time load the down link: no split gets faster for it, and
        // where that link is slow the update takes longer
        var slowDown = new SplitModel(20e9, 53e9, 2.5e9, 50e9, 4);
        for (double share = 0; share <= 1.0001; share += 0.1)
            assertTrue(slowDown.seconds(N, 0, share, 2) >= slowDown.seconds(N, 0, share, 0), "share " + share);
        assertTrue(slowDown.seconds(N, 0, slowDown.bestFraction(N, 0, 2), 2) > slowDown.seconds(N, 0, slowDown.bestFraction(N, 0, 0), 0));
        assertTrue(H200.explain(N, 0, f, 0).contains(String.format(java.util.Locale.ROOT, "the GPU updates %.0f%% of 1,000,000,000 offloaded parameters", 100 * f)),
                H200.explain(N, 0, f, 0));
    }

    @Test
    void workTheCpuDoesDuringBackwardMovesTheSplitToIt() {
        double f = H200.bestFraction(N, 0, 0), headStart = 0.5e9; // elements the CPU updates during backward
        double early = H200.early(headStart).bestFraction(N, 0, 0);
        assertTrue(early < f, "the CPU takes more once backward leaves it time for " + headStart + " elements: " + early + " against " + f);
        assertTrue(H200.early(headStart).seconds(N, 0, early, 0) < 0.75 * H200.seconds(N, 0, f, 0), "and the update after backward a quarter shorter at least");
        // at the same share, what the CPU did during backward is off the update, its weights' copies up too
        for (double h : new double[] {0.125e9, headStart}) { // part of the CPU's share left after backward, then none
            double left = Math.max(0, N * (1 - f) - h), up = 4 * (left + 2 * f * N) / 53e9 + N * f / 50e9;
            assertEquals(Math.max(up, left / 2.5e9), H200.early(h).seconds(N, 0, f, 0), 1e-12, "head start " + h);
        }
        // time enough for all of the CPU's share: only the GPU's moments cross the link after backward
        assertEquals(N * 8 * 0.5 / 53e9 + N * 0.5 / 50e9, H200.early(N).seconds(N, 0, 0.5, 0), 1e-12);
    }

    @Test
    void momentsBroughtUpDuringBackwardMoveTheSplitToTheGpu() {
        double f = H200.bestFraction(N, 0, 0), ahead = 0.1e9; // the GPU's first elements whose moments come up during backward
        SplitModel withWindows = H200.ahead(ahead);
        assertTrue(withWindows.bestFraction(N, 0, 0) > f, withWindows.bestFraction(N, 0, 0) + " against " + f);
        // at a share the link bounds, their copies up are off the update; a share under them leaves the GPU's none
        double up = 4 * (N * (1 - 0.9) + 2 * (0.9 * N - ahead)) / 53e9 + 0.9 * N / 50e9;
        assertEquals(up, withWindows.seconds(N, 0, 0.9, 0), 1e-12);
        var fastCpu = new SplitModel(53e9, 53e9, 100e9, 50e9, 4).ahead(ahead); // the link bounds every share
        assertEquals(4 * N * 0.95 / 53e9 + 0.05 * N / 50e9, fastCpu.seconds(N, 0, 0.05, 0), 1e-12);
    }
}
