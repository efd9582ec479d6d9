package dev.strata.trainer.train;

import dev.strata.runtime.nn.Linear;

/** Linear warm-up to the peak rate, then cosine decay to the minimum at the last step. A pure function of the step. */
public record LrSchedule(double peak, double min, long warmupSteps, long totalSteps) {
    public LrSchedule {
        if (!(peak > 0) || min < 0 || min > peak)
            throw new IllegalArgumentException("learning rates need 0 <= min_lr <= lr and lr > 0, got lr " + peak + ", min_lr " + min);
        if (warmupSteps < 0 || totalSteps <= 0)
            throw new IllegalArgumentException("warmup_steps must be >= 0 and steps > 0");
    }

    /** The rate for step s, counting from 0. */
    public double at(long s) {
        if (s < warmupSteps) return peak * (s + 1) / warmupSteps;
        if (totalSteps <= warmupSteps) return peak;
        double progress = Math.min(1.0, (double) (s - warmupSteps) / (totalSteps - warmupSteps));
        return min + 0.5 * (peak - min) * (1 + Math.cos(Math.PI * progress));
    }
}
