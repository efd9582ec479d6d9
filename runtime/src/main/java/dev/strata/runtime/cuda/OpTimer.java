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
    private CUevent_st spanStart, spanEnd;
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

    /** Device milliseconds of the work {@code work} enqueues, between two events of its own; waits for the stream. */
    double span(Runnable work) {
        if (spanStart == null) {
            spanStart = new CUevent_st();
            spanEnd = new CUevent_st();
            Cuda.check(cudart.cudaEventCreate(spanStart), "cudaEventCreate");
            Cuda.check(cudart.cudaEventCreate(spanEnd), "cudaEventCreate");
        }
        Cuda.check(cudart.cudaEventRecord(spanStart, stream), "cudaEventRecord");
        work.run();
        Cuda.check(cudart.cudaEventRecord(spanEnd, stream), "cudaEventRecord");
        Cuda.check(cudart.cudaEventSynchronize(spanEnd), "cudaEventSynchronize");
        float[] elapsed = new float[1];
        Cuda.check(cudart.cudaEventElapsedTime(elapsed, spanStart, spanEnd), "cudaEventElapsedTime");
        return elapsed[0];
    }

    void close() {
        if (spanStart != null) {
            cudart.cudaEventDestroy(spanStart);
            cudart.cudaEventDestroy(spanEnd);
        }
        for (CUevent_st e : events) cudart.cudaEventDestroy(e);
        events.clear();
    }
}
