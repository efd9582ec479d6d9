package dev.strata.quant;

import java.util.Locale;

/**
 * How an FP8 operand's scales are chosen, so that its largest value lands at the format's max: current, one scale per
 * tensor from its own amax (one extra pass over it); delayed, one per tensor from the largest amax of the last steps
 * (Transformer Engine's recipe: one pass); rowwise, one per row of each operand from that row's own amax, i.e. per
 * token for activations and gradients and per channel for weights and the weight-gradient operands (torchao's
 * rowwise recipe), which keeps a few large tokens or channels from crushing the rest.
 */
public enum Scaling {
    CURRENT, DELAYED, ROWWISE;

    public String configName() { return name().toLowerCase(Locale.ROOT); }

    public static Scaling parse(String name) {
        for (Scaling s : values()) if (s.configName().equals(name.trim().toLowerCase(Locale.ROOT))) return s;
        throw new IllegalArgumentException("unknown scaling '" + name + "' (expected current, delayed or rowwise)");
    }
}
