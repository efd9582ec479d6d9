package dev.strata.runtime.nn;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import java.util.List;
import java.util.Map;

/**
 * Which linear layers get a LoRA adapter, applied from outside the model: every layer whose name contains a
 * {@code targets} entry (e.g. "attention", "feed_forward.w2") is wrapped in a {@link LoraLinear} of the given rank,
 * scaled by alpha / rank. The adapters' weights are zeros until initialised.
 */
public record LoraPlan(int rank, double alpha, List<String> targets) {
    public LoraPlan {
        if (rank < 1) throw new IllegalArgumentException("a LoRA rank is at least 1, got " + rank);
        if (!(alpha > 0)) throw new IllegalArgumentException("LoRA alpha must be positive, got " + alpha);
        if (targets.isEmpty()) throw new IllegalArgumentException("LoRA needs at least one target layer name");
        targets = List.copyOf(targets);
    }

    public boolean targets(String layer) { return targets.stream().anyMatch(layer::contains); }

    /** Wraps what {@code base} makes for the targeted layers; adapters in {@code dtype} (the master weights'). */
    public Linear.Maker maker(Backend backend, DType dtype, Linear.Maker base) {
        return (name, in, out, bias) -> {
            Linear layer = base.make(name, in, out, bias);
            if (!targets(name)) return layer;
            if (rank > Math.min(in, out))
                throw new IllegalArgumentException("layer " + name + ": LoRA rank " + rank + " exceeds its smaller dimension " + Math.min(in, out));
            // the layer's own sizes: a tensor-parallel layer's slice is narrower than the whole layer
            return new LoraLinear(layer, new Parameter(name + ".lora_a", Parameter.Kind.LORA_A, backend.zeros(dtype, rank, layer.inFeatures())),
                    new Parameter(name + ".lora_b", Parameter.Kind.LORA_B, backend.zeros(dtype, layer.outFeatures(), rank)), alpha / rank);
        };
    }

    /** Freezes every parameter but the adapters (what LoRA fine-tuning trains); returns how many stay trainable. */
    public static long freezeAllButAdapters(Map<String, Parameter> params) {
        long trainable = 0;
        for (Parameter p : params.values()) {
            if (p.kind().adapter()) trainable += p.value().numel();
            else p.freeze();
        }
        if (trainable == 0) throw new IllegalArgumentException("lora.targets matched no linear layer of the model");
        return trainable;
    }
}
