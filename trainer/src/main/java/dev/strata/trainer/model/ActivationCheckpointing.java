package dev.strata.trainer.model;

import java.util.Locale;

/**
 * Which blocks keep only their input during forward and run forward again just before their backward, trading
 * compute for memory: none; selective, every second block (torchtitan's layer-level selective checkpointing); full,
 * every block.
 */
public enum ActivationCheckpointing {
    NONE, SELECTIVE, FULL;

    /** Whether block {@code index} of the model is recomputed. */
    public boolean recomputes(int index) {
        return this == FULL || (this == SELECTIVE && index % 2 == 0);
    }

    public static ActivationCheckpointing parse(String name) {
        return valueOf(name.trim().toUpperCase(Locale.ROOT));
    }
}
