package dev.strata.quant;

import java.util.Locale;

/**
 * Which of a linear's three GEMMs get a Hadamard rotation along their contracted dimension (HALO's levels): the
 * forward Y = X·Wᵀ (over in-features), the data gradient dX = dY·W (over out-features), the weight gradient
 * dW = dYᵀ·X (over tokens).
 */
public enum Rotation {
    NONE("none"), FWD("fwd"), FWD_DGRAD("fwd+dgrad"), ALL("all");

    private final String configName;

    Rotation(String configName) { this.configName = configName; }

    public boolean forward() { return this != NONE; }

    public boolean dgrad() { return this == FWD_DGRAD || this == ALL; }

    public boolean wgrad() { return this == ALL; }

    public String configName() { return configName; }

    public static Rotation parse(String name) {
        for (Rotation r : values()) if (r.configName.equals(name.trim().toLowerCase(Locale.ROOT))) return r;
        throw new IllegalArgumentException("unknown rotation '" + name + "' (expected none, fwd, fwd+dgrad or all)");
    }
}
