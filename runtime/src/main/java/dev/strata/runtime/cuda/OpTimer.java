package dev.strata.runtime.cuda;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;

/**
 * Device time per op, for the benchmark's breakdown: while on, every GEMM and kernel launch is bracketed by a pair
 * of events on the stream (no synchronisation, so the timed work runs as it would untimed). Events are pooled.
 */
final class OpTimer {
    private final CUstream_st stream;
    private final List<CUevent_st> events = new ArrayList<>();
    private final List<String> names = new ArrayList<>();
    private boolean on;

    OpTimer(CUstream_st stream) { this.stream = stream; }

    void enable(boolean on) { this.on = on; }

    /** Runs {@code op}, timing it under {@code name} when on. */
    void time(String name, Runnable op) {
        if (!on) {
            op.run();
            return;
        }
        int i = 2 * names.size();
        Cuda.check(cudart.cudaEventRecord(event(i), stream), "cudaEventRecord");
        op.run();
        Cuda.check(cudart.cudaEventRecord(event(i + 1), stream), "cudaEventRecord");
        names.add(name);
    }

    private CUevent_st event(int i) {
        while (events.size() <= i) {
            CUevent_st e = new CUevent_st();
            Cuda.check(cudart.cudaEventCreate(e), "cudaEventCreate");
            events.add(e);
        }
        return events.get(i);
    }

    /** Milliseconds per op name since the last drain; waits for the stream. */
    Map<String, Double> drain() {
        Cuda.check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize");
        Map<String, Double> ms = new TreeMap<>();
        float[] elapsed = new float[1];
        for (int i = 0; i < names.size(); i++) {
            Cuda.check(cudart.cudaEventElapsedTime(elapsed, events.get(2 * i), events.get(2 * i + 1)), "cudaEventElapsedTime");
            ms.merge(names.get(i), (double) elapsed[0], Double::sum);
        }
        names.clear();
        return ms;
    }

    void close() {
        for (CUevent_st e : events) cudart.cudaEventDestroy(e);
        events.clear();
    }
}
