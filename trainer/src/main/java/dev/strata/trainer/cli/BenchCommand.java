package dev.strata.trainer.cli;

import dev.strata.config.JobConfig;
import dev.strata.trainer.train.TrainBench;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "bench", mixinStandardHelpOptions = true, description = "Benchmarks.", subcommands = {BenchCommand.Train.class, BenchCommand.Checkpoint.class, BenchCommand.CpuAdamW.class, BenchCommand.LinearLayer.class, BenchCommand.HadamardCpu.class})
final class BenchCommand extends CommandGroup {

    @Command(name = "checkpoint", mixinStandardHelpOptions = true,
            description = "Time a checkpoint of a preset model's weights and AdamW moments: a synchronous save against an asynchronous one's pause and background write.")
    static final class Checkpoint implements Callable<Integer> {
        @Option(names = "--model", defaultValue = "llama-1b", description = "A preset of reference.conf (default ${DEFAULT-VALUE}).") String model;
        @Option(names = "--backend", defaultValue = "cuda", description = "cuda, cpu or auto (default ${DEFAULT-VALUE}).") String backend;
        @Option(names = "--dtype", defaultValue = "bf16", description = "Training dtype (default ${DEFAULT-VALUE}; parameters and moments are f32).") String dtype;
        @Option(names = "--dir", defaultValue = "/tmp/strata-bench-checkpoints", description = "Where to write; must not exist, removed afterwards (default ${DEFAULT-VALUE}).")
        String dir;
        @Option(names = "--saves", defaultValue = "3", description = "Asynchronous saves timed (default ${DEFAULT-VALUE}).") int saves;

        @Override public Integer call() throws Exception {
            JobConfig job = JobConfig.parse("model.preset = \"" + model + "\"\nbackend = " + backend + "\ndtype = " + dtype, "strata bench checkpoint --model " + model);
            dev.strata.trainer.train.CheckpointBench.run(job, model, dir, saves, System.out);
            return 0;
        }
    }

    @Command(name = "adamw", mixinStandardHelpOptions = true, description = "Time the offload tier's CPU AdamW over f32 parameters: G params/s.")
    static final class CpuAdamW implements Callable<Integer> {
        @Option(names = "--params", defaultValue = "268435456", description = "Parameters updated at once (default ${DEFAULT-VALUE}).") long params;
        @Option(names = "--threads", description = "CPU threads (default: every core).") Integer threads;
        @Option(names = "--reps", defaultValue = "10", description = "Timed updates (default ${DEFAULT-VALUE}).") int reps;

        @Override public Integer call() {
            dev.strata.offload.CpuAdamWBench.run(params, threads != null ? threads : Runtime.getRuntime().availableProcessors(), reps, System.out);
            return 0;
        }
    }

    @Command(name = "train", mixinStandardHelpOptions = true,
            description = "Time training steps of a preset model on random tokens: tokens/s, median step, MFU, peak memory.")
    static final class Train implements Callable<Integer> {
        @Option(names = "--model", defaultValue = "gpt2-124m", description = "A preset of reference.conf (default ${DEFAULT-VALUE}).")
        String model;

        @Option(names = "--batch", defaultValue = "16", description = "Sequences per step (default ${DEFAULT-VALUE}).")
        int batch;

        @Option(names = "--seq", defaultValue = "1024", description = "Tokens per sequence (default ${DEFAULT-VALUE}).")
        int seq;

        @Option(names = "--dtype", defaultValue = "bf16", description = "bf16, f32 (GPU) or f32, f64 (CPU) (default ${DEFAULT-VALUE}).")
        String dtype;

        @Option(names = "--backend", defaultValue = "cuda", description = "cuda, cpu or auto (default ${DEFAULT-VALUE}).")
        String backend;

        @Option(names = "--steps", defaultValue = "30", description = "Timed steps (default ${DEFAULT-VALUE}).")
        int steps;

        @Option(names = "--warmup", defaultValue = "5", description = "Untimed steps first (default ${DEFAULT-VALUE}).")
        int warmup;

        @Option(names = "--activation-checkpointing", defaultValue = "none", description = "none, selective or full (default ${DEFAULT-VALUE}).")
        String checkpointing;

        @Option(names = "--cuda-graphs", defaultValue = "true", arity = "1", description = "Replay steps as CUDA graphs: true or false (default ${DEFAULT-VALUE}).")
        boolean cudaGraphs;

        @Option(names = "--linear", defaultValue = "bf16", description = "bf16 (dense) or fp8 (default ${DEFAULT-VALUE}).")
        String linear;

        @Option(names = "--rotation", defaultValue = "all", description = "FP8 rotations: none, fwd, fwd+dgrad, all (default ${DEFAULT-VALUE}).")
        String rotation;

        @Option(names = "--scaling", defaultValue = "delayed", description = "FP8 scaling: current, delayed or rowwise (default ${DEFAULT-VALUE}).")
        String scaling;

        @Option(names = "--exclude", defaultValue = "output", split = ",",
                description = "Layers kept dense under --linear fp8, by name part; 'none' for none (default ${DEFAULT-VALUE}: the LM head).")
        String[] exclude;

        @Option(names = "--top", defaultValue = "16", description = "Ops listed by device time (default ${DEFAULT-VALUE}).")
        int top;

        @Option(names = "--lora-rank", defaultValue = "0", description = "LoRA adapters of this rank on attention and feed-forward, the rest frozen; 0: full training (default ${DEFAULT-VALUE}).")
        int loraRank;

        @Option(names = "--offload", defaultValue = "none", description = "offload.optimizer: none, cpu or nvme (default ${DEFAULT-VALUE}).") String offload;
        @Option(names = "--gpu-fraction", defaultValue = "auto", description = "offload.gpu_fraction: auto or 0..1 (default ${DEFAULT-VALUE}).") String gpuFraction;
        @Option(names = "--nvme-dir", defaultValue = "", description = "offload.nvme_dir, for --offload nvme.") String nvmeDir;
        @Option(names = "--pin-memory-gb", defaultValue = "0", description = "offload.pin_memory_gb (default ${DEFAULT-VALUE}: no bound).") double pinMemoryGb;
        @Option(names = "--set", description = "A job setting on top of the preset, KEY=VALUE (repeatable), e.g. model.n_heads=80.") List<String> settings = new java.util.ArrayList<>();
        @Option(names = "--offload-activations", description = "offload.activations: recomputed blocks' inputs in host memory (with --activation-checkpointing).") boolean offloadActivations;
        @Option(names = "--accum", defaultValue = "1", description = "Micro-batches of batch x seq a step, gradients accumulated (default ${DEFAULT-VALUE}).") int accum;

        @Override public Integer call() {
            JobConfig job = JobConfig.parse("model.preset = \"" + model + "\"\nbackend = " + backend + "\ndtype = " + dtype
                    + "\ntraining.activation_checkpointing = " + checkpointing + "\ncuda_graphs = " + cudaGraphs + "\nlora.rank = " + loraRank
                    + "\nprecision { linear = " + linear + ", rotation = \"" + rotation + "\", scaling = " + scaling + ", exclude = " + excludeList() + " }"
                    + "\noffload { optimizer = " + offload + ", gpu_fraction = \"" + gpuFraction + "\", nvme_dir = \"" + nvmeDir + "\", pin_memory_gb = " + pinMemoryGb + ", activations = " + offloadActivations + " }",
                    "strata bench train --model " + model);
            job = TrainCommand.withOverrides(job, settings);
            String impl = (linear.equals("fp8") ? "strata-fp8-" + rotation + "-" + scaling : "strata")
                    + (linear.equals("fp8") && !List.of(exclude).equals(List.of("output")) ? "-exclude-" + String.join("+", exclude) : "")
                    + (loraRank > 0 ? "-lora" + loraRank : "") + (cudaGraphs && offload.equals("none") ? "" : "-no-graphs")
                    + (offload.equals("none") ? "" : "-offload-" + offload + "-" + gpuFraction + (job.offload().updateDuringBackward() ? "" : "-after-backward")
                            + switch (job.offload().updateDuringForward()) { case "cpu" -> "-gpu-before-forward"; case "false" -> "-before-forward"; default -> ""; });
            var r = TrainBench.run(job, model, batch, seq, accum, warmup, steps, System.out);
            System.out.printf(Locale.ROOT, "%s %s on %s: %,.0f tokens/s, median step %.1f ms, %s TFLOP/s, MFU %s, peak memory %s%n",
                    r.model(), r.dtype() + (linear.equals("fp8") ? " with fp8 linears" : "") + (loraRank > 0 ? ", LoRA rank " + loraRank : ""),
                    r.device(), r.tokensPerSecond(), r.medianStepMs(),
                    Double.isNaN(r.achievedTflops()) ? "n/a" : String.format(Locale.ROOT, "%.1f", r.achievedTflops()),
                    Double.isNaN(r.mfu()) ? "n/a" : String.format(Locale.ROOT, "%.1f%%", 100 * r.mfu()),
                    Double.isNaN(r.peakMemoryGiB()) ? "n/a" : String.format(Locale.ROOT, "%.2f GiB", r.peakMemoryGiB()));
            if (!r.opMs().isEmpty()) {
                double total = r.opMs().values().stream().mapToDouble(Double::doubleValue).sum();
                TrainBench.byCategory(r.opMs()).forEach((k, v) ->
                        System.out.printf(Locale.ROOT, "  %-10s %8.2f ms  %5.1f%% of device time%n", k, v, 100 * v / total));
                r.opMs().entrySet().stream().sorted(Map.Entry.<String, Double>comparingByValue(Comparator.reverseOrder())).limit(top)
                        .forEach(e -> System.out.printf(Locale.ROOT, "    %-32s %8.2f ms%n", e.getKey(), e.getValue()));
            }
            // One machine-readable line, for tools/bench/compare.py.
            System.out.printf(Locale.ROOT, "BENCH {\"impl\": \"%s\", \"model\": \"%s\", \"batch\": %d, \"seq\": %d, \"accum\": %d, \"tokens_per_s\": %.1f, "
                    + "\"step_ms\": %.3f, \"mfu\": %.4f, \"peak_gib\": %.3f, \"ops_ms\": {%s}}%n", impl, r.model(), r.batch(), r.seq(), accum,
                    r.tokensPerSecond(), r.medianStepMs(), r.mfu(), r.peakMemoryGiB(),
                    TrainBench.byCategory(r.opMs()).entrySet().stream().map(e -> String.format(Locale.ROOT, "\"%s\": %.3f", e.getKey(), e.getValue()))
                            .collect(Collectors.joining(", ")));
            return 0;
        }

        private String excludeList() {
            return List.of(exclude).equals(List.of("none")) ? "[]" : Stream.of(exclude).map(e -> "\"" + e + "\"").collect(Collectors.joining(", ", "[", "]"));
        }
    }

    @Command(name = "linear", mixinStandardHelpOptions = true,
            description = "Time one linear layer's forward + backward on the GPU: dense bf16 against FP8 at each rotation level.")
    static final class LinearLayer implements Callable<Integer> {
        @Option(names = "--tokens", defaultValue = "8192", description = "Rows of the activations (default ${DEFAULT-VALUE}).")
        int tokens;

        @Option(names = "--shapes", defaultValue = "4096x4096,4096x14336,14336x4096", split = ",",
                description = "in x out of each layer (default ${DEFAULT-VALUE}: Llama-8B's).")
        String[] shapes;

        @Option(names = "--hadamard-block", defaultValue = "128", description = "Rotation block (default ${DEFAULT-VALUE}).")
        int block;

        @Option(names = "--steps", defaultValue = "20", description = "Timed optimizer steps (default ${DEFAULT-VALUE}).")
        int steps;

        @Option(names = "--micro-batches", defaultValue = "1",
                description = "Forwards and backwards per step, sharing the weight's quantized copies; times are per micro-batch (default ${DEFAULT-VALUE}).")
        int microBatches;

        @Option(names = "--variants", split = ",",
                description = "FP8 variants to time, by name (e.g. 'fp8 all delayed'); bf16, the baseline, always runs (default: all).")
        List<String> variants;

        @Override public Integer call() {
            try (var gpu = dev.strata.runtime.cuda.CudaBackend.open(0)) {
                for (String shape : shapes) {
                    String[] io = shape.split("x");
                    if (io.length != 2) throw new IllegalArgumentException("--shapes takes INxOUT pairs, got '" + shape + "'");
                    int in = Integer.parseInt(io[0].trim()), out = Integer.parseInt(io[1].trim());
                    if (microBatches < 1) throw new IllegalArgumentException("--micro-batches must be at least 1, got " + microBatches);
                    System.out.printf(Locale.ROOT, "linear %d -> %d, %d tokens, hadamard block %d, %d micro-batch%s a step, on %s%n", in, out, tokens,
                            block, microBatches, microBatches == 1 ? "" : "es", gpu.deviceName());
                    var rows = dev.strata.trainer.train.LinearBench.run(gpu, tokens, in, out, block, microBatches, variants, 3, steps, System.out);
                    rows.values().forEach(r -> System.out.printf(Locale.ROOT,
                            "BENCH_LINEAR {\"in\": %d, \"out\": %d, \"tokens\": %d, \"micro_batches\": %d, \"variant\": \"%s\", \"ms\": %.4f, \"eager_ms\": %.4f, \"speedup\": %.3f, \"quantize_share\": %.3f}%n",
                            in, out, tokens, microBatches, r.variant(), r.medianMs(), r.eagerMs(), r.speedup(), r.quantizeShare()));
                }
            }
            return 0;
        }
    }

    @Command(name = "hadamard", mixinStandardHelpOptions = true,
            description = "Time the CPU Walsh-Hadamard transform (FP8 emulation's rotation), SIMD against scalar.")
    static final class HadamardCpu implements Callable<Integer> {
        @Option(names = "--length", defaultValue = "4194304", description = "Values rotated per pass (default ${DEFAULT-VALUE}).")
        int length;

        @Option(names = "--blocks", defaultValue = "32,128,1024,4096", split = ",", description = "Block sizes (default ${DEFAULT-VALUE}).")
        int[] blocks;

        @Option(names = "--steps", defaultValue = "15", description = "Timed passes; the median is reported (default ${DEFAULT-VALUE}).")
        int steps;

        @Override public Integer call() {
            double[] v = new java.util.SplittableRandom(1).doubles(length, -1, 1).toArray();
            System.out.printf(Locale.ROOT, "hadamard on the CPU, %,d doubles a pass, %d SIMD lanes%n", length,
                    jdk.incubator.vector.DoubleVector.SPECIES_PREFERRED.length());
            for (int block : blocks) {
                double simd = medianMs(() -> dev.strata.runtime.cpu.Hadamard.rotate(v, block));
                double scalar = medianMs(() -> dev.strata.runtime.cpu.Hadamard.rotateScalar(v, block));
                System.out.printf(Locale.ROOT, "  block %5d   simd %8.2f ms   scalar %8.2f ms   %.2fx%n", block, simd, scalar, scalar / simd);
            }
            return 0;
        }

        private double medianMs(Runnable pass) {
            for (int i = 0; i < 3; i++) pass.run(); // warm-up: the JIT compiles the loops
            double[] ms = new double[steps];
            for (int i = 0; i < steps; i++) {
                long t0 = System.nanoTime();
                pass.run();
                ms[i] = (System.nanoTime() - t0) / 1e6;
            }
            java.util.Arrays.sort(ms);
            return ms[steps / 2];
        }
    }
}
