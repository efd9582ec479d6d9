package dev.strata.trainer.train;

import dev.strata.config.JobConfig;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.Optimizer;
import dev.strata.trainer.model.ActivationCheckpointing;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.io.PrintStream;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * What {@code strata bench train} measures: whole training steps (forward, loss, backward, clipping, AdamW) of a
 * freshly initialised model on random tokens, timed after warm-up; the median step gives tokens/s and MFU. On the
 * GPU one more step runs with every op timed by events, for the GEMM / attention / other split.
 */
public final class TrainBench {
    private TrainBench() {}

    public record Result(String model, String device, String dtype, int batch, int seq, long parameters, double medianStepMs,
                         double tokensPerSecond, double achievedTflops, double mfu, double peakMemoryGiB,
                         Map<String, Double> opMs) {}

    /** Dense BF16 tensor-core peaks (TFLOP/s) of the GPUs we know, by a part of their name; NaN when unknown. */
    static double bf16PeakTflops(String deviceName) {
        String n = deviceName.toUpperCase(Locale.ROOT);
        if (n.contains("H100") && n.contains("PCIE")) return 756;
        if (n.contains("H100") || n.contains("H200") || n.contains("H800") || n.contains("GH200")) return 989.4;
        if (n.contains("A100") || n.contains("A800")) return 312;
        return Double.NaN;
    }

    /** job.cudaGraphs() chooses between replayed graphs and eager steps; the op split always comes from an eager step. */
    public static Result run(JobConfig job, String modelName, int b, int t, int warmup, int steps, PrintStream out) {
        return run(job, modelName, b, t, 1, warmup, steps, out);
    }

    /** accum micro-batches of b × t a step (gradient accumulation): tokens/s counts all of them. */
    public static Result run(JobConfig job, String modelName, int b, int t, int accum, int warmup, int steps, PrintStream out) {
        if (steps < 1 || warmup < 0 || accum < 1) throw new IllegalArgumentException("--steps and --accum must be >= 1 and --warmup >= 0");
        Backend backend = Models.backend(job);
        backend.deterministic(job.training().deterministic());
        DType dtype = Models.dtype(job, backend);
        ModelConfig cfg = Models.config(job.model());
        if (t > cfg.maxSeqLen()) throw new IllegalArgumentException("--seq " + t + " exceeds the model's max_seq_len " + cfg.maxSeqLen());
        String device = backend instanceof CudaBackend cuda ? cuda.deviceName() : "CPU (" + Runtime.getRuntime().availableProcessors() + " threads)";
        out.printf(Locale.ROOT, "bench train: %s, %,d parameters, %s on %s, batch %d x %d%s, activation checkpointing %s, cuda graphs %s, linears %s%s%n",
                modelName, cfg.parameterCount(), dtype.configName(), device, b, t, accum > 1 ? " x " + accum + " micro-batches" : "", job.training().activationCheckpointing(), job.cudaGraphs(),
                job.precision().fp8() ? "fp8 (rotation " + job.precision().rotation() + ", block " + (job.precision().hadamardBlock() == 0 ? "full" : job.precision().hadamardBlock()) + ")" : "dense",
                job.lora().enabled() ? ", LoRA rank " + job.lora().rank() : "");
        Transformer model = Models.model(job, cfg, backend, dtype);
        model.checkpointActivations(ActivationCheckpointing.parse(job.training().activationCheckpointing()));
        Initializer.initialize(model, job.seed());
        // the job as the bench runs it, so offload's memory plan (gpu_state_gb = auto) sees these micro-batches
        Optimizer opt = Trainer.optimizer(job.withOverrides(String.format(Locale.ROOT, "training { batch_size = %d, seq_len = %d, grad_accum_steps = %d, beta1 = 0.9, beta2 = 0.95, "
                + "eps = 1e-8, weight_decay = 0.1, decay_embeddings = false }", b, t, accum)), model, dev.strata.runtime.nn.GradientSync.NONE, out);
        SplittableRandom rng = new SplittableRandom(job.seed());
        int[][] batches = new int[4][];
        for (int i = 0; i < batches.length; i++) batches[i] = rng.ints((long) b * t + 1, 0, cfg.vocabSize()).toArray();

        try (opt; var acts = Trainer.activationOffload(job, model)) {
            return timed(job, modelName, model, cfg, backend, dtype, device, opt, batches, b, t, accum, warmup, steps, out);
        }
    }

    private static Result timed(JobConfig job, String modelName, Transformer model, ModelConfig cfg, Backend backend, DType dtype, String device,
                                Optimizer opt, int[][] batches, int b, int t, int accum, int warmup, int steps, PrintStream out) {
        double[] ms = new double[steps];
        try (TrainStep step = new TrainStep(model, opt, b, t, accum, job.training().gradClip(), job.cudaGraphs())) {
            for (int s = 0; s < warmup + steps; s++) {
                long t0 = System.nanoTime();
                step(step, batches, s, accum, b, t);
                if (s >= warmup) ms[s - warmup] = (System.nanoTime() - t0) / 1e6;
                if (s == warmup - 1 && opt instanceof dev.strata.offload.OffloadedAdamW o) o.timings(); // from the timed steps on
                if (s == warmup - 1 || s == warmup + steps - 1) out.printf(Locale.ROOT, "  step %d: %.1f ms%n", s + 1, (System.nanoTime() - t0) / 1e6);
            }
        }
        if (opt instanceof dev.strata.offload.OffloadedAdamW o) out.println(o.timings());
        Arrays.sort(ms);
        double median = steps % 2 == 1 ? ms[steps / 2] : (ms[steps / 2 - 1] + ms[steps / 2]) / 2;
        double tokensPerSecond = (double) b * t * accum / (median / 1e3);
        // 6·N FLOPs a token counts full training; LoRA skips the frozen weights' gradients, so it reports none.
        double tflops = job.lora().enabled() ? Double.NaN : cfg.trainingFlopsPerToken(t) * tokensPerSecond / 1e12;
        double peakGiB = Double.NaN;
        Map<String, Double> opMs = new LinkedHashMap<>();
        if (backend instanceof CudaBackend cuda) {
            peakGiB = cuda.allocator().stats().peakAllocatedBytes() / (double) (1L << 30);
            try (TrainStep eager = new TrainStep(model, opt, b, t, 1, job.training().gradClip(), false)) {
                cuda.timeOps(true);
                step(eager, batches, 0, 1, b, t);
                cuda.timeOps(false);
            }
            opMs.putAll(cuda.opTimes());
        }
        return new Result(modelName, device, dtype.configName(), b, t, cfg.parameterCount(), median, tokensPerSecond, tflops,
                tflops / bf16PeakTflops(device), peakGiB, opMs);
    }

    /** Step s's accum micro-batches, taken in turn from the random batches. */
    private static void step(TrainStep step, int[][] batches, int s, int accum, int b, int t) {
        int[][] in = new int[accum][], target = new int[accum][];
        for (int i = 0; i < accum; i++) {
            int[] tokens = batches[(s * accum + i) % batches.length];
            in[i] = Arrays.copyOfRange(tokens, 0, b * t);
            target[i] = Arrays.copyOfRange(tokens, 1, b * t + 1);
        }
        step.run(in, target, 1e-4);
    }

    /** The op split as "category: ms (share)" lines: GEMMs, attention kernels, everything else. */
    public static Map<String, Double> byCategory(Map<String, Double> opMs) {
        Map<String, Double> c = new LinkedHashMap<>();
        c.put("gemm", 0.0);
        c.put("attention", 0.0);
        c.put("other", 0.0);
        opMs.forEach((name, v) -> c.merge(name.startsWith("gemm") ? "gemm" : name.startsWith("attention") ? "attention" : "other", v, Double::sum));
        return c;
    }
}
