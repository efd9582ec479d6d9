package dev.strata.trainer.model;

import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.Tensor;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Predicate;

/**
 * GPT-2 style initialisation, kept apart from construction: weights N(0, 0.02), the residual projections
 * (attention.wo, feed_forward.w2) N(0, 0.02/sqrt(2L)), biases 0, norm weights 1. LoRA adapters start as PEFT's do:
 * A uniform in ±1/sqrt(in), B zero, so an adapted model starts equal to its base. Each parameter draws from its own
 * stream seeded by (seed, name), so any slice of the model starts from the same weights as the whole model.
 */
public final class Initializer {
    private Initializer() {}

    public static void initialize(Transformer model, long seed) { initialize(model, seed, p -> true); }

    /** Only the LoRA adapters: the base weights came from a checkpoint or a Hugging Face directory. */
    public static void initializeAdapters(Transformer model, long seed) {
        initialize(model, seed, p -> p.kind().adapter());
    }

    private static void initialize(Transformer model, long seed, Predicate<Parameter> which) {
        List<Parameter> chosen = model.parameters().values().stream().filter(which).toList();
        // Each tensor draws from a stream of its own, so they are drawn on every core at once (a 13B model's values
        // take minutes on one), a few tensors at a time to bound the host memory, and uploaded in order.
        int batch = Math.max(1, Runtime.getRuntime().availableProcessors());
        for (int from = 0; from < chosen.size(); from += batch) {
            List<Parameter> group = chosen.subList(from, Math.min(chosen.size(), from + batch));
            List<double[]> values = group.parallelStream().map(p -> draw(model, p, seed)).toList();
            for (int i = 0; i < group.size(); i++) {
                Parameter p = group.get(i);
                try (Tensor t = model.backend().fromDoubles(values.get(i), p.value().dtype(), p.placement().globalShape())) {
                    p.placement().take(t, p.value()); // a slice (tensor parallelism) keeps its part of the whole, so every layout starts alike
                }
            }
        }
    }

    /** The whole tensor's initial values; the padded vocabulary's rows past V stay zero, the stream draws for the real rows only. */
    private static double[] draw(Transformer model, Parameter p, long seed) {
        ModelConfig cfg = model.config();
        int[] shape = p.placement().globalShape();
        int n = Math.toIntExact(Tensor.numel(shape) / shape[0] * model.storedRows(p.name(), shape));
        double[] values = new double[Math.toIntExact(Tensor.numel(shape))];
        SplittableRandom rng = new SplittableRandom(seed * 0x9E3779B97F4A7C15L ^ p.name().hashCode());
        switch (p.kind()) {
            case NORM -> java.util.Arrays.fill(values, p.name().endsWith(".bias") ? 0 : 1);
            case BIAS, LORA_B -> { }
            case LORA_A -> {
                double bound = 1 / Math.sqrt(shape[1]);
                for (int i = 0; i < n; i++) values[i] = bound * (2 * rng.nextDouble() - 1);
            }
            case LINEAR_WEIGHT, EMBEDDING -> {
                boolean residual = p.name().endsWith("attention.wo.weight") || p.name().endsWith("feed_forward.w2.weight");
                double std = residual ? 0.02 / Math.sqrt(2.0 * cfg.nLayers()) : 0.02;
                for (int i = 0; i < n; i++) values[i] = std * gaussian(rng);
            }
        }
        return values;
    }

    /** Box–Muller: SplittableRandom has no nextGaussian before JDK 17's RandomGenerator default, which varies. */
    private static double gaussian(SplittableRandom rng) {
        double u1 = rng.nextDouble(), u2 = rng.nextDouble();
        return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
    }
}
