package dev.strata.trainer.cli;

import dev.strata.config.JobConfig;
import dev.strata.trainer.train.TrainBench;
import java.util.Comparator;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "bench", mixinStandardHelpOptions = true, description = "Benchmarks.", subcommands = BenchCommand.Train.class)
final class BenchCommand extends CommandGroup {

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

        @Override public Integer call() {
            JobConfig job = JobConfig.parse("model.preset = \"" + model + "\"\nbackend = " + backend + "\ndtype = " + dtype
                    + "\ntraining.activation_checkpointing = " + checkpointing + "\ncuda_graphs = " + cudaGraphs, "strata bench train --model " + model);
            var r = TrainBench.run(job, model, batch, seq, warmup, steps, System.out);
            System.out.printf(Locale.ROOT, "%s %s on %s: %,.0f tokens/s, median step %.1f ms, %.1f TFLOP/s, MFU %s, peak memory %s%n",
                    r.model(), r.dtype(), r.device(), r.tokensPerSecond(), r.medianStepMs(), r.achievedTflops(),
                    Double.isNaN(r.mfu()) ? "n/a (unknown peak)" : String.format(Locale.ROOT, "%.1f%%", 100 * r.mfu()),
                    Double.isNaN(r.peakMemoryGiB()) ? "n/a" : String.format(Locale.ROOT, "%.2f GiB", r.peakMemoryGiB()));
            if (!r.opMs().isEmpty()) {
                double total = r.opMs().values().stream().mapToDouble(Double::doubleValue).sum();
                TrainBench.byCategory(r.opMs()).forEach((k, v) ->
                        System.out.printf(Locale.ROOT, "  %-10s %8.2f ms  %5.1f%% of device time%n", k, v, 100 * v / total));
                r.opMs().entrySet().stream().sorted(Map.Entry.<String, Double>comparingByValue(Comparator.reverseOrder())).limit(16)
                        .forEach(e -> System.out.printf(Locale.ROOT, "    %-32s %8.2f ms%n", e.getKey(), e.getValue()));
            }
            // One machine-readable line, for tools/bench/compare.py.
            System.out.printf(Locale.ROOT, "BENCH {\"impl\": \"%s\", \"model\": \"%s\", \"batch\": %d, \"seq\": %d, \"tokens_per_s\": %.1f, "
                    + "\"step_ms\": %.3f, \"mfu\": %.4f, \"peak_gib\": %.3f, \"ops_ms\": {%s}}%n", cudaGraphs ? "strata" : "strata-no-graphs", r.model(), r.batch(), r.seq(),
                    r.tokensPerSecond(), r.medianStepMs(), r.mfu(), r.peakMemoryGiB(),
                    TrainBench.byCategory(r.opMs()).entrySet().stream().map(e -> String.format(Locale.ROOT, "\"%s\": %.3f", e.getKey(), e.getValue()))
                            .collect(Collectors.joining(", ")));
            return 0;
        }
    }
}
