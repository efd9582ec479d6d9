package dev.strata.trainer.train;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.trainer.model.Parameter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW exactly as {@code torch.optim.AdamW}: decoupled weight decay, bias correction, with global-norm clipping
 * folded into the update as {@code torch.nn.utils.clip_grad_norm_} does it. Weight decay applies to linear weights,
 * never to norms or biases, and to embeddings only when asked. Moments are F32, or F64 for F64 parameters.
 */
public final class AdamW {

    public record Settings(double beta1, double beta2, double eps, double weightDecay, boolean decayEmbeddings) {
        public Settings {
            if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
                throw new IllegalArgumentException("AdamW betas must lie in [0, 1), got " + beta1 + ", " + beta2);
            if (!(eps > 0) || !(weightDecay >= 0)) throw new IllegalArgumentException("AdamW eps must be > 0 and weight_decay >= 0");
        }
    }

    private final Backend backend;
    private final Map<String, Parameter> params;
    private final Settings settings;
    private final Map<String, Tensor> expAvg = new LinkedHashMap<>(), expAvgSq = new LinkedHashMap<>();
    private long step;

    public AdamW(Map<String, Parameter> params, Settings settings) {
        this.params = params;
        this.settings = settings;
        this.backend = params.values().iterator().next().value().backend();
        for (Parameter p : params.values()) {
            DType stateType = p.value().dtype() == DType.F64 ? DType.F64 : DType.F32;
            expAvg.put(p.name(), backend.zeros(stateType, p.shape()));
            expAvgSq.put(p.name(), backend.zeros(stateType, p.shape()));
        }
    }

    /** The global L2 norm of all gradients. */
    public double gradNorm() {
        List<Tensor> grads = new ArrayList<>();
        for (Parameter p : params.values()) grads.add(p.grad());
        return Math.sqrt(backend.sumOfSquares(grads));
    }

    /**
     * One update at learning rate lr. With maxGradNorm > 0 the gradients are scaled by
     * min(1, maxGradNorm / (norm + 1e-6)) first. Returns the gradient norm before clipping.
     */
    public double step(double lr, double maxGradNorm) {
        double norm = gradNorm();
        double scale = maxGradNorm > 0 ? Math.min(1.0, maxGradNorm / (norm + 1e-6)) : 1.0;
        step++;
        for (Parameter p : params.values()) {
            var hp = new dev.strata.runtime.Backend.AdamWStep(lr, settings.beta1(), settings.beta2(), settings.eps(),
                    decayOf(p), step);
            backend.adamw(p.value(), p.grad(), expAvg.get(p.name()), expAvgSq.get(p.name()), hp, scale);
            p.markUpdated();
        }
        return norm;
    }

    private double decayOf(Parameter p) {
        return switch (p.kind()) {
            case LINEAR_WEIGHT -> settings.weightDecay();
            case EMBEDDING -> settings.decayEmbeddings() ? settings.weightDecay() : 0;
            case NORM, BIAS -> 0;
        };
    }

    public long stepCount() { return step; }

    public void restore(long stepCount) { this.step = stepCount; }

    /** The optimizer's tensors by checkpoint name: {@code exp_avg.<param>} and {@code exp_avg_sq.<param>}. */
    public Map<String, Tensor> state() {
        Map<String, Tensor> s = new LinkedHashMap<>();
        expAvg.forEach((k, v) -> s.put("exp_avg." + k, v));
        expAvgSq.forEach((k, v) -> s.put("exp_avg_sq." + k, v));
        return s;
    }
}
