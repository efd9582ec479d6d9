package dev.strata.runtime.nn;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW exactly as {@code torch.optim.AdamW}: decoupled weight decay, bias correction, with global-norm clipping
 * folded into the update as {@code torch.nn.utils.clip_grad_norm_} does it. Weight decay applies to linear weights,
 * never to norms or biases, and to embeddings only when asked; LoRA adapters decay as linear weights do. Frozen
 * parameters are left out: they get no moments. Moments are F32, or F64 for F64 parameters.
 *
 * <p>An update is enqueued without a host round trip ({@link #enqueueUpdate}): the learning rate and bias corrections
 * come from a small device tensor written before the step, and the gradient norm stays on the device until asked
 * for, so a whole optimizer step can be captured as a CUDA graph.
 */
public final class AdamW implements Optimizer {

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
    private final List<Tensor> normGrads = new ArrayList<>(); // the gradients this rank adds into the global norm
    private final Tensor schedule, gradSumSquares; // (3): lr, 1-b1^t, sqrt(1-b2^t); (1): squared global grad norm
    private final GradientSync sync;
    private long step;

    public AdamW(Map<String, Parameter> params, Settings settings) { this(params, settings, GradientSync.NONE); }

    /**
     * Under a sharded optimizer (ZeRO) this rank's AdamW updates, and holds moments for, only the parameters
     * {@code sync} gives it; the gradient norm adds every rank's share through the sync.
     */
    public AdamW(Map<String, Parameter> params, Settings settings, GradientSync sync) {
        this.sync = sync;
        this.params = new LinkedHashMap<>();
        params.forEach((name, p) -> { if (p.trainable() && sync.updates(p)) this.params.put(name, p); });
        if (params.values().stream().noneMatch(Parameter::trainable)) throw new IllegalArgumentException("AdamW has no trainable parameter to update");
        this.settings = settings;
        this.backend = params.values().iterator().next().value().backend();
        for (Parameter p : this.params.values()) {
            DType stateType = stateType(p);
            Tensor m = backend.zeros(stateType, p.shape()), v = backend.zeros(stateType, p.shape());
            expAvg.put(p.name(), m);
            expAvgSq.put(p.name(), v);
            if (sync.countsInNorm(p)) normGrads.add(p.grad());
        }
        schedule = backend.zeros(DType.F64, 3);
        gradSumSquares = backend.zeros(DType.F64, 1);
    }

    /**
     * Counts the next step and writes its learning rate and bias corrections to the device; call before
     * {@link #enqueueUpdate} (or before replaying a graph that holds it).
     */
    @Override public void prepareStep(double lr) {
        step++;
        double bc1 = 1 - Math.pow(settings.beta1(), step), bc2Sqrt = Math.sqrt(1 - Math.pow(settings.beta2(), step));
        try (Tensor s = backend.fromDoubles(new double[] {lr, bc1, bc2Sqrt}, DType.F64, 3)) {
            backend.copyInto(s, schedule);
        }
    }

    /**
     * Enqueues one update: the global gradient norm, then clipped AdamW on every parameter (one multi-tensor op,
     * which also writes the bf16 copies the GEMMs read), then the parameters' other copies. maxGradNorm = 0 turns
     * clipping off.
     */
    @Override public void enqueueUpdate(double maxGradNorm) {
        backend.sumOfSquares(normGrads, gradSumSquares);
        sync.reduceNormSquares(gradSumSquares);
        List<Backend.AdamWSlot> slots = new ArrayList<>();
        for (Parameter p : params.values())
            slots.add(new Backend.AdamWSlot(p.value(), p.grad(), expAvg.get(p.name()), expAvgSq.get(p.name()), decayOf(p), bf16Copy(p)));
        backend.adamw(slots, new Backend.AdamWSettings(settings.beta1(), settings.beta2(), settings.eps(), maxGradNorm), schedule, gradSumSquares);
        int i = 0;
        for (Parameter p : params.values()) p.markUpdated(slots.get(i++).copy() != null);
    }

    /** The moments' dtype: F64 for F64 parameters, else F32. */
    public static DType stateType(Parameter p) { return p.value().dtype() == DType.F64 ? DType.F64 : DType.F32; }

    /** The bf16 copy of an f32 parameter an update writes as it goes (saving the GEMMs' copy a pass), or null. */
    public static Tensor bf16Copy(Parameter p) {
        Tensor copy = p.copy();
        return copy != null && copy.dtype() == DType.BF16 && p.value().dtype() == DType.F32 ? copy : null;
    }

    /** The global L2 norm of the gradients the last update saw (waits for it); not finite when it was skipped. */
    @Override public double lastGradNorm() { return Math.sqrt(backend.toDoubles(gradSumSquares)[0]); }

    /** The last update was skipped (non-finite gradients): its step number goes to the next one. */
    @Override public void stepSkipped() { step--; }

    /** One whole update at learning rate lr, waiting for it; returns the gradient norm before clipping. */
    public double step(double lr, double maxGradNorm) {
        prepareStep(lr);
        enqueueUpdate(maxGradNorm);
        return lastGradNorm();
    }

    private double decayOf(Parameter p) { return weightDecay(settings, p); }

    /** p's weight decay: linear weights and adapters decay, embeddings when asked, norms and biases never. */
    public static double weightDecay(Settings settings, Parameter p) {
        return switch (p.kind()) {
            case LINEAR_WEIGHT, LORA_A, LORA_B -> settings.weightDecay();
            case EMBEDDING -> settings.decayEmbeddings() ? settings.weightDecay() : 0;
            case NORM, BIAS -> 0;
        };
    }

    @Override public long stepCount() { return step; }

    @Override public void restore(long stepCount) { this.step = stepCount; }

    /** The optimizer's tensors by checkpoint name: {@code exp_avg.<param>} and {@code exp_avg_sq.<param>}. */
    @Override public Map<String, Tensor> state() {
        Map<String, Tensor> s = new LinkedHashMap<>();
        expAvg.forEach((k, v) -> s.put("exp_avg." + k, v));
        expAvgSq.forEach((k, v) -> s.put("exp_avg_sq." + k, v));
        return s;
    }

    @Override public void close() {
        expAvg.values().forEach(Tensor::close);
        expAvgSq.values().forEach(Tensor::close);
        schedule.close();
        gradSumSquares.close();
    }
}
