package dev.strata.offload;

import java.util.Locale;

/** Where an offloaded update's host time goes, summed over the steps since the last {@link #report}. */
final class UpdateTimings {
    long steps, earlyKept, earlyDropped, earlyWindowNanos, totalNanos, normNanos, cpuNanos, copyWaitNanos, storeNanos, deviceNanos, upNanos, endNanos, lateNanos, lateWaitNanos, gpuLate;

    /**
     * Host milliseconds a step, averaged: the update as a whole, and in it the wait for backward (the norm), the
     * CPU's AdamW after backward (with updates during backward: the wait for those still running), the waits for
     * copies down and for the store (nvme reads), enqueuing the GPU's subgroups and the CPU side's copies up, and the
     * end (the device's waits, the weights' bf16 copies); the updates during backward kept and redone, and the time
     * backward left them; the CPU's AdamW run on into the next forward, and that forward's wait for it; the GPU's
     * subgroups the next forward enqueued; then counting starts again.
     */
    String report() {
        double n = Math.max(1, steps) * 1e6;
        String s = String.format(Locale.ROOT, "offload update: %.1f ms a step on the host (backward and norm %.1f, CPU AdamW %.1f, "
                        + "waiting for copies down %.1f, for the store %.1f; enqueuing GPU subgroups %.1f, copies up %.1f, the end %.1f)", totalNanos / n, normNanos / n,
                cpuNanos / n, copyWaitNanos / n, storeNanos / n, deviceNanos / n, upNanos / n, endNanos / n)
                + (earlyKept + earlyDropped > 0 ? String.format(Locale.ROOT, "; CPU subgroups updated during backward: %d kept, %d redone, %.1f ms of backward left to the CPU",
                        earlyKept, earlyDropped, earlyWindowNanos / n) : "")
                + (lateNanos > 0 ? String.format(Locale.ROOT, "; CPU AdamW during the next forward %.1f, the forward waiting for it %.1f", lateNanos / n, lateWaitNanos / n) : "")
                + (gpuLate > 0 ? String.format(Locale.ROOT, "; GPU subgroups updated as the next forward needs them: %.1f a step", gpuLate / (double) Math.max(1, steps)) : "");
        steps = earlyKept = earlyDropped = earlyWindowNanos = totalNanos = normNanos = cpuNanos = copyWaitNanos = storeNanos = deviceNanos = upNanos = endNanos = lateNanos = lateWaitNanos = gpuLate = 0;
        return s;
    }
}
