package dev.strata.trainer.train;

import dev.strata.runtime.nn.GradientSync;

/** Which data-parallel rank a training loop is, and how it syncs gradients with the others. */
record Rank(int index, GradientSync sync) {
    static final Rank SINGLE = new Rank(0, GradientSync.NONE);
}
