package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import java.util.List;
import java.util.Locale;

/**
 * Deep Optimizer States' performance model, measured on this machine at start: the host link both ways, the CPU's
 * and the device's AdamW rates. A CPU-updated element sends its weight up and, at update time, what has not come
 * down before (cpuDown values: its weight unless the weights stay on the host, its gradient unless backward sent
 * it); a GPU-updated one sends its two moments up and back. Each direction has a copy stream, the CPU works beside
 * them: the split is the GPU share that makes the longest of the three shortest. The GPU tier's elements (kept
 * on the device) cost only the device's time. Where the CPU updates during backward ({@link EarlyUpdates}), the
 * earlyElements it has time for there (measured on a step) come off its share after backward, their weights' copies
 * up too; the GPU's first aheadElements have their moments brought up during backward ({@link DeviceWindows}).
 */
record SplitModel(double downBytesPerSecond, double upBytesPerSecond, double cpuPerSecond, double devicePerSecond, int stateBytes, double aheadElements,
                  double earlyElements) {

    SplitModel(double downBytesPerSecond, double upBytesPerSecond, double cpuPerSecond, double devicePerSecond, int stateBytes) {
        this(downBytesPerSecond, upBytesPerSecond, cpuPerSecond, devicePerSecond, stateBytes, 0, 0);
    }

    /** The same, the moments of the GPU's first elements brought up during backward. */
    SplitModel ahead(double elements) { return new SplitModel(downBytesPerSecond, upBytesPerSecond, cpuPerSecond, devicePerSecond, stateBytes, elements, earlyElements); }

    /** The same, the CPU updating this many of its elements during backward. */
    SplitModel early(double elements) { return new SplitModel(downBytesPerSecond, upBytesPerSecond, cpuPerSecond, devicePerSecond, stateBytes, aheadElements, elements); }

    static SplitModel measure(Backend backend, CpuAdamW cpu, DType stateType) {
        int n = stateType == DType.F64 ? 1 << 16 : 1 << 24, sb = stateType.byteSize(); // a subgroup's size, the rates a step sees (f64: tests, on the CPU)
        double down = 0, up = 0, cpuRate = 0, deviceRate = 0;
        try (Tensor p = backend.zeros(stateType, n); Tensor g = backend.zeros(stateType, n); Tensor m = backend.zeros(stateType, n);
             Tensor v = backend.zeros(stateType, n); Tensor schedule = backend.fromDoubles(new double[] {1e-4, 0.1, 0.1}, DType.F64, 3);
             Tensor norm = backend.fromDoubles(new double[] {1}, DType.F64, 1); StateBlock staged = new StateBlock(backend, (long) n * sb);
             StateBlock moments = new StateBlock(backend, (long) n * sb); StateBlock copied = new StateBlock(backend, (long) n * sb)) {
            var slot = List.of(new Backend.AdamWSlot(p, g, m, v, 0.1));
            var part = List.of(new CpuAdamW.Part(staged.m().bytes(), staged.v().bytes(), moments.m().bytes(), moments.v().bytes(), n,
                    new CpuAdamW.Step(0.9, 0.95, 1e-8, 1e-4, 0.1, 0.1, 0, 1)));
            for (int rep = 0; rep < 6; rep++) { // the best of several: the first ones start threads and compile
                backend.synchronize();
                long t0 = System.nanoTime();
                try (Backend.Event e = backend.copyToHost(g, copied.v())) {
                    e.await();
                }
                long t1 = System.nanoTime();
                try (Backend.Event e = backend.copyFromHost(copied.m(), p)) {
                    e.await();
                }
                long t2 = System.nanoTime();
                // the CPU's rate beside copies both ways for as long as it works, as in a step: they share its memory bandwidth
                List<Backend.Event> copies = new java.util.ArrayList<>();
                for (int i = 0; i < 4; i++) {
                    copies.add(backend.copyToHost(g, copied.v()));
                    copies.add(backend.copyFromHost(copied.m(), p));
                }
                cpu.update(stateType, part);
                long t3 = System.nanoTime();
                cpuRate = Math.max(cpuRate, n / ((t3 - t2) / 1e9));
                for (Backend.Event e : copies) {
                    e.await();
                    e.close();
                }
                long t4 = System.nanoTime();
                backend.adamw(slot, new Backend.AdamWSettings(0.9, 0.95, 1e-8, 0), schedule, norm);
                backend.synchronize();
                long t5 = System.nanoTime();
                down = Math.max(down, (double) n * sb / ((t1 - t0) / 1e9));
                up = Math.max(up, (double) n * sb / ((t2 - t1) / 1e9));
                deviceRate = Math.max(deviceRate, n / ((t5 - t4) / 1e9));
            }
        }
        return new SplitModel(down, up, cpuRate, deviceRate, sb);
    }

    /** Seconds for the update of n offloaded elements after backward, the GPU taking share f of them, and of kept ones in the GPU tier. */
    double seconds(long n, long kept, double f, int cpuDown) {
        double cpuAfter = Math.max(0, n * (1 - f) - earlyElements), gpuAfter = Math.max(0, n * f - aheadElements); // elements whose values still go up when backward ends
        double down = n * stateBytes * (cpuDown * (1 - f) + 2 * f) / downBytesPerSecond, up = stateBytes * (cpuAfter + 2 * gpuAfter) / upBytesPerSecond;
        return Math.max(Math.max(down, up + (n * f + kept) / devicePerSecond), cpuAfter / cpuPerSecond);
    }

    /** The GPU share (in hundredths) of n offloaded elements that makes the update shortest. */
    double bestFraction(long n, long kept, int cpuDown) {
        double best = 0;
        for (int i = 1; i <= 100; i++) if (seconds(n, kept, i / 100.0, cpuDown) < seconds(n, kept, best, cpuDown)) best = i / 100.0;
        return best;
    }

    /** Why share f: the rates, and the update's time at f, all on the CPU, and all on the device. */
    String explain(long n, long kept, double f, int cpuDown) {
        return String.format(Locale.ROOT, "host link %.1f GB/s down, %.1f up; AdamW %.2f G params/s on the CPU (beside copies), %.1f on the device: the GPU updates %.0f%% "
                        + "of %,d offloaded parameters, about %.0f ms a step (all on the CPU: %.0f ms, the state kept on the device: %.0f ms)",
                downBytesPerSecond / 1e9, upBytesPerSecond / 1e9, cpuPerSecond / 1e9, devicePerSecond / 1e9, 100 * f, n,
                1e3 * seconds(n, kept, f, cpuDown), 1e3 * seconds(n, kept, 0, cpuDown), 1e3 * (n + kept) / devicePerSecond);
    }
}
