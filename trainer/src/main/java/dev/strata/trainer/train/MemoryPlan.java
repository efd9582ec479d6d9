package dev.strata.trainer.train;

import dev.strata.trainer.model.Stage;
import dev.strata.config.JobConfig;
import dev.strata.parallel.pipeline.PipelineSchedule;
import dev.strata.trainer.model.ActivationCheckpointing;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * {@code strata plan}: the memory one rank needs, by kind, for a job's layout, counted from what Strata allocates —
 * master weights and the bf16 copies GEMMs read, gradients, AdamW's moments (sharded by ZeRO), each micro-batch's
 * saved activations times the schedule's micro-batches in flight, the last stage's logits, gradient buckets in flight
 * and the largest backward's temporaries — on the stage that needs most; and the schedule's bubble. With offload, the
 * moments move to pinned host memory and nvme files, which it lists beside the device's total.
 */
public final class MemoryPlan {
    /** The share of the GPU a plan may fill: the allocator's slack and cuBLAS's workspaces take the rest. */
    public static final double GPU_SHARE = 0.9;
    private MemoryPlan() {}

    record Layout(int dp, int tp, int pp) {
        int gpus() { return dp * tp * pp; }

        @Override public String toString() { return "dp " + dp + " × tp " + tp + " × pp " + pp; }
    }

    /** Bytes per rank by kind, on the stage that needs most, and the predicted bubble. */
    record Estimate(Layout layout, int stage, long weights, long gradients, long optimizer, long activations, long communication,
                    long temporaries, double bubble, dev.strata.offload.Footprint offloaded, long hostActivations) {
        long total() { return weights + gradients + optimizer + activations + communication + temporaries; }
    }

    /** The sizes a rank's tensors take: parameters (and gradients), optimizer moments, activations, row statistics. */
    record Bytes(int param, int state, int activation, int stats, boolean bf16Copies) {
        static Bytes of(String dtype) {
            return switch (dtype) {
                case "bf16" -> new Bytes(4, 4, 2, 4, true);
                case "f64" -> new Bytes(8, 8, 8, 8, false);
                default -> new Bytes(4, 4, 4, 4, false);
            };
        }
    }

    /** The bytes the job's busiest rank expects to hold on its device: what a fine-tune's plan fits to the GPU. */
    public static long deviceBytes(JobConfig job, ModelConfig cfg) { return estimate(job, cfg).total(); }

    /**
     * offload.gpu_state_gb = auto: what {@link #GPU_SHARE} of the GPU's memory leaves once the plan has
     * placed everything else, the state offloaded (on the CPU backend, which has no device memory to spare: none).
     */
    static double gpuStateLeft(JobConfig job, ModelConfig cfg, dev.strata.runtime.Device device, java.io.PrintStream out) {
        if (device.kind() != dev.strata.runtime.Device.Kind.CUDA) {
            out.println("offload: gpu_state_gb = auto keeps nothing on the CPU backend");
            return 0;
        }
        long total = dev.strata.runtime.cuda.CudaBackend.properties(device.index()).totalMemory();
        long planned = deviceBytes(job.withOverrides("offload.gpu_state_gb = 0"), cfg);
        double gb = gpuStateLeft(planned, total);
        out.printf(java.util.Locale.ROOT, "offload: gpu_state_gb = auto: strata plan puts %.1f GiB on the GPU with all the state offloaded; "
                + "%.0f%% of its %.1f GiB leaves %.1f GB for the GPU tier%n", planned / (double) (1L << 30), 100 * GPU_SHARE, total / (double) (1L << 30), gb);
        return gb;
    }

    /** The GB a GPU of totalBytes leaves for the GPU tier beside planned bytes of everything else. */
    static double gpuStateLeft(long planned, long totalBytes) { return Math.max(0, GPU_SHARE * totalBytes - planned) / 1e9; }

    /** The job's own layout. */
    static Estimate estimate(JobConfig job, ModelConfig cfg) {
        var p = job.parallel();
        return estimate(job, cfg, new Layout(p.dp(), p.tp(), p.pp()));
    }

    static Estimate estimate(JobConfig job, ModelConfig cfg, Layout layout) {
        Estimate worst = null;
        for (int s = 0; s < layout.pp(); s++) {
            Estimate e = stage(job, cfg, layout, s);
            if (worst == null || e.total() > worst.total()) worst = e;
        }
        return worst;
    }

    private static Estimate stage(JobConfig job, ModelConfig cfg, Layout layout, int s) {
        var tr = job.training();
        var p = job.parallel();
        Bytes by = Bytes.of(job.dtype());
        int tp = layout.tp(), m = tr.gradAccumSteps();
        boolean unchained = layout.pp() == 1 && p.virtualStages() > 1; // one stage runs no interleaved schedule
        JobConfig at = layout.pp() == p.pp() ? job
                : job.withOverrides("parallel { pp = " + layout.pp() + ", pp_layers = []" + (unchained ? ", schedule = 1f1b, virtual_stages = 1" : "") + " }");
        Stage stage = Models.stage(at, cfg, s, layout.pp());
        int layers = stage.layerCount();
        long c = cfg.dim(), vp = cfg.paddedVocabSize(), d = cfg.headDim();
        long heads = cfg.nHeads() / tp, kvHeads = Math.max(1, cfg.nKvHeads() / tp), f = cfg.ffnDim() / tp;
        boolean gpt2 = cfg.family() == ModelConfig.Family.GPT2, lora = job.lora().enabled();
        // parameters of this rank: sliced linears, whole norms (and GPT-2's row-parallel biases)
        long linear = c * d * (2 * heads + 2 * kvHeads) + (gpt2 ? 2 : 3) * c * f;
        long small = (gpt2 ? 4 : 2) * c + (gpt2 ? d * (heads + 2 * kvHeads) + c + f + c : 0);
        long table = vp / tp * c, linearWeights = layers * linear, others = layers * small;
        if (stage.embedding()) others += table + (gpt2 ? (long) cfg.maxSeqLen() * c : 0);
        if (stage.head()) {
            others += (gpt2 ? 2 : 1) * c;
            if (!cfg.tieEmbeddings()) linearWeights += table;
            else if (!stage.embedding()) others += table; // the last stage's copy of the tied table
        }
        long params = linearWeights + others;
        long trainable = lora ? 0 : params;
        if (lora) trainable = (long) layers * job.lora().targets().size() * job.lora().rank() * 2 * c; // an adapter: about r·(in + out)
        boolean headReadsTable = stage.head() && cfg.tieEmbeddings();
        long weights = params * by.param() + (by.bf16Copies() ? (linearWeights + (headReadsTable ? table : 0)) * 2 : 0);
        int dp = layout.dp(), zero = p.zero();
        long gradients = trainable * by.param() / (zero == 2 ? dp : 1);
        long optimizer = 2 * trainable * by.state() / (zero >= 1 ? dp : 1);
        var o = job.offload();
        dev.strata.offload.Footprint offloaded = null; // offload: the device keeps the GPU tier and the subgroups in flight
        if (o.enabled()) {
            offloaded = dev.strata.offload.Footprint.of(optimizer / (2 * by.state()), by.state(), o.optimizer(), o.pinMemoryGb(), o.subgroupElements(), o.gpuStateGb());
            optimizer = offloaded.device();
        }
        // activations one micro-batch keeps on this stage, times the schedule's micro-batches in flight
        long n = (long) tr.batchSize() * tr.seqLen(), rows = p.sequenceParallel() ? n / tp : n;
        int a = by.activation(), st = by.stats(), normStats = gpt2 ? 2 : 1;
        long block = rows * c * a * 4                                   // the block's input, attention's and MLP's inputs, the mid-block residual
                + 2L * normStats * rows * st                            // the two norms' row statistics
                + n * d * (2 * heads + 2 * kvHeads) * a                 // q, k, v after RoPE, attention's output
                + n * heads * st                                        // log-sum-exp per row and head
                + (gpt2 ? 2 : 3) * n * f * a                            // the MLP's pre-activations and activation
                + (p.sequenceParallel() ? 2 * n * c * a : 0);           // the gathered inputs of the two column-parallel regions
        ActivationCheckpointing ac = ActivationCheckpointing.parse(tr.activationCheckpointing());
        long[] perChunk = new long[stage.chunks().size()]; // what one micro-batch keeps through each chunk
        boolean inputsOnHost = o.activations(); // offload.activations: a recomputed block's input waits on the host
        long onHost = 0;
        for (int k = 0; k < perChunk.length; k++)
            for (int l = stage.chunks().get(k).first(); l < stage.chunks().get(k).end(); l++) {
                perChunk[k] += ac.recomputes(l) ? (inputsOnHost ? 0 : rows * c * a) : block;
                if (ac.recomputes(l) && inputsOnHost) onHost += rows * c * a;
            }
        if (stage.embedding()) perChunk[0] += n * 4 * (gpt2 ? 2 : 1); // the token (and GPT-2's position) ids the lookups' backward reads
        if (stage.head()) perChunk[perChunk.length - 1] += 2 * rows * c * a + normStats * rows * st + (p.sequenceParallel() ? n * c * a : 0);
        long perMicroBatch = java.util.Arrays.stream(perChunk).max().orElse(0); // a context in flight holds one chunk's
        PipelineSchedule schedule = Pipeline.schedule(at);
        int inFlight = layout.pp() == 1 ? 1 : schedule.inFlight(s, layout.pp(), m);
        long logits = stage.head() ? n * (vp / tp) * a * (layout.pp() == 1 ? 1 : inFlight) : 0;
        long activations = perMicroBatch * inFlight + logits + (ac == ActivationCheckpointing.NONE ? 0 : block);
        long communication = (dp > 1 ? trainable * by.param() : 0) // every bucket stays packed until the step's reduction completes
                + (layout.pp() > 1 ? 2 * rows * c * a : 0);        // a received activation and a gradient on their way
        long temporaries = n * (2 * heads * d + 2 * kvHeads * d + (gpt2 ? 2 : 3) * f) * a + 2 * rows * c * a;
        double bubble = layout.pp() == 1 ? 0 : schedule.bubble(layout.pp(), m);
        return new Estimate(layout, s, weights, gradients, optimizer, activations, communication, temporaries, bubble, offloaded, onHost * inFlight);
    }

    /** The layouts of gpus ranks the model splits into (tp up to 8, within a host), fewest bytes per rank first. */
    /** The plan as printed: one layout by kind, or several in a table. */
    public static String report(JobConfig job, int gpus, double gpuGiB) {
        ModelConfig cfg = Models.config(job.model());
        var tr = job.training();
        StringBuilder out = new StringBuilder(String.format(java.util.Locale.ROOT, "plan: %s, %,d parameters, %s, batch %d x %d x %d accum, zero %d, schedule %s%s%s%n",
                cfg.family().name().toLowerCase(java.util.Locale.ROOT), cfg.parameterCount(), job.dtype(), tr.batchSize(), tr.seqLen(), tr.gradAccumSteps(),
                job.parallel().zero(), job.parallel().schedule(), job.parallel().sequenceParallel() ? ", sequence parallel" : "",
                tr.activationCheckpointing().equals("none") ? "" : ", activation checkpointing " + tr.activationCheckpointing()));
        if (gpus <= 0) {
            Estimate e = estimate(job, cfg);
            out.append(String.format(java.util.Locale.ROOT, "layout %s, per rank (stage %d needs most):%n", e.layout(), e.stage()));
            String[] kinds = {"weights", "gradients", "optimizer state", "activations", "communication", "backward temporaries"};
            long[] bytes = {e.weights(), e.gradients(), e.optimizer(), e.activations(), e.communication(), e.temporaries()};
            for (int i = 0; i < kinds.length; i++) out.append(String.format(java.util.Locale.ROOT, "  %-22s %8.2f GiB%n", kinds[i], gib(bytes[i])));
            out.append(String.format(java.util.Locale.ROOT, "  %-22s %8.2f GiB%s%n  %-22s %7.1f %%%n", "total", gib(e.total()), fits(e, gpuGiB), "bubble", 100 * e.bubble()));
            if (e.hostActivations() > 0)
                out.append(String.format(java.util.Locale.ROOT, "  %-22s %8.2f GiB (offload.activations, in pinned host memory)%n", "block inputs on the host", gib(e.hostActivations())));
            if (e.offloaded() != null)
                out.append(String.format(java.util.Locale.ROOT, "off the device (offload.optimizer = %s, AdamW moments and staging):%n  %-22s %8.2f GiB%n  %-22s %8.2f GiB%s%n"
                                + "  and up to %.2f GiB more pinned where RAM has room: the CPU side's weights and gradients, kept on the host%n",
                        job.offload().optimizer(), "pinned host memory", gib(e.offloaded().ram()), "nvme files", gib(e.offloaded().disk()),
                        job.offload().nvmeDir().isEmpty() ? "" : " under " + job.offload().nvmeDir(), gib(e.offloaded().hostWeights())));
            if (e.offloaded() != null && job.offload().optimizer().equals("cpu") && job.offload().updateDuringBackward())
                out.append(String.format(java.util.Locale.ROOT, "  and up to %.2f GiB beside them for the CPU's updates during backward (offload.update_during_backward)%n",
                        gib(e.offloaded().earlySpares())));
            if (e.offloaded() != null && job.offload().autoGpuState())
                out.append(gpuGiB > 0 ? String.format(java.util.Locale.ROOT, "  gpu_state_gb = auto: %.0f%% of a %s GiB GPU leaves %.1f GB beside the above; the state that fits there stays%n",
                        100 * GPU_SHARE, gpuGiB, gpuStateLeft(e.total(), (long) (gpuGiB * (1L << 30))))
                        : "  gpu_state_gb = auto: the GPU tier keeps what " + Math.round(100 * GPU_SHARE) + "% of the GPU leaves beside the above (--gpu-memory says how much)\n");
            return out.toString();
        }
        out.append(String.format(java.util.Locale.ROOT, "%-22s %9s %9s %9s %11s %9s %9s %7s%n", "layout (" + gpus + " GPUs)", "weights", "grads", "optim", "activations",
                "other", "total", "bubble"));
        List<Estimate> ranked = new ArrayList<>(layouts(job, cfg, gpus)); // what fits, then the smallest bubble, then the least memory
        ranked.sort(Comparator.comparing((Estimate e) -> gpuGiB > 0 && gib(e.total()) > gpuGiB).thenComparingDouble(Estimate::bubble)
                .thenComparingLong(Estimate::total));
        for (Estimate e : ranked.subList(0, Math.min(6, ranked.size())))
            out.append(String.format(java.util.Locale.ROOT, "%-22s %9.2f %9.2f %9.2f %11.2f %9.2f %9.2f %6.1f%%%s%n", e.layout(), gib(e.weights()), gib(e.gradients()),
                    gib(e.optimizer()), gib(e.activations()), gib(e.communication() + e.temporaries()), gib(e.total()), 100 * e.bubble(), fits(e, gpuGiB)));
        out.append("(the best " + Math.min(6, ranked.size()) + " of " + ranked.size() + " layouts; GiB per rank, on its stage that needs most)\n");
        return out.toString();
    }

    private static double gib(long bytes) { return bytes / (double) (1L << 30); }

    private static String fits(Estimate e, double gpuGiB) {
        if (!(gpuGiB > 0)) return "";
        return gib(e.total()) <= gpuGiB ? "  fits " + gpuGiB + " GiB" : "  does not fit " + gpuGiB + " GiB";
    }

    static List<Estimate> layouts(JobConfig job, ModelConfig cfg, int gpus) {
        List<Estimate> all = new ArrayList<>();
        for (int tp = 1; tp <= Math.min(8, gpus); tp *= 2)
            for (int pp = 1; pp * tp <= gpus; pp++) {
                if (gpus % (tp * pp) != 0 || cfg.nHeads() % tp != 0 || cfg.ffnDim() % tp != 0 || pp * job.parallel().virtualStages() > cfg.nLayers()) continue;
                if (pp > 1 && Pipeline.schedule(job).refusal(pp, job.training().gradAccumSteps()) != null) continue;
                if (cfg.nKvHeads() % tp != 0 && tp % cfg.nKvHeads() != 0) continue;
                all.add(estimate(job, cfg, new Layout(gpus / (tp * pp), tp, pp)));
            }
        all.sort(Comparator.comparingLong(Estimate::total));
        return all;
    }
}
