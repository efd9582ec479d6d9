package dev.strata.config;

import java.util.List;

/**
 * LoRA fine-tuning: with {@code rank > 0} every linear layer whose name contains a {@code targets} entry gets an
 * adapter of that rank, scaled by {@code alpha / rank}, and everything else in the model is frozen.
 */
public record LoraSpec(int rank, double alpha, List<String> targets) {

    public boolean enabled() { return rank > 0; }

    static LoraSpec from(Fields f) {
        var l = new LoraSpec(f.nonNegative("lora.rank"), f.number("lora.alpha"), f.strings("lora.targets"));
        f.require(l.alpha > 0, "lora.alpha must be positive, got " + l.alpha);
        f.require(!l.enabled() || !l.targets.isEmpty(), "lora.targets must name at least one layer when lora.rank > 0");
        return l;
    }
}
