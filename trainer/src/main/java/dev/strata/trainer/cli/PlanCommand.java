package dev.strata.trainer.cli;

import dev.strata.config.JobConfig;
import dev.strata.trainer.train.MemoryPlan;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "plan", mixinStandardHelpOptions = true,
        description = "Memory per GPU by kind for the job's layout (or the layouts of --gpus ranks), and the pipeline bubble.")
final class PlanCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "JOB", description = "HOCON job file") Path job;

    @Option(names = "--gpus", paramLabel = "N", description = "List the dp × tp × pp layouts of N ranks instead of the job's own.") int gpus;

    @Option(names = "--gpu-memory", paramLabel = "GiB", description = "Say which layouts fit a GPU of this much memory.") double gpuMemory;

    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override a job setting (repeatable).")
    java.util.List<String> overrides = new java.util.ArrayList<>();

    @Override public Integer call() throws Exception {
        if (gpus < 0 || gpuMemory < 0) throw new IllegalArgumentException("--gpus and --gpu-memory must be positive");
        JobConfig cfg = TrainCommand.withOverrides(JobConfig.load(job), overrides);
        System.out.print(MemoryPlan.report(cfg, gpus, gpuMemory));
        return 0;
    }
}
