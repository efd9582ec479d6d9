package dev.strata.trainer.cli;

import dev.strata.config.JobConfig;
import dev.strata.trainer.train.RunDirectory;
import dev.strata.trainer.train.Trainer;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "train", mixinStandardHelpOptions = true, description = "Run a training job on this host.")
final class TrainCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "JOB", description = "HOCON job file (see examples/ and reference.conf)")
    Path job;

    @Option(names = "--resume", description = "Continue the run in run_dir from its latest checkpoint.")
    boolean resume;

    @Option(names = "--overwrite", description = "Remove the run in run_dir (run.json, metrics.jsonl, checkpoints/, *.log; nothing else) and start again.")
    boolean overwrite;

    @Option(names = "--allow-changes", description = "With --resume: accept changed batch size, sequence length, data, seed or schedule (recorded in metrics.jsonl).")
    boolean allowChanges;

    @Option(names = "--exit-after", paramLabel = "STEP", description = "Checkpoint and stop after this step, as if interrupted.")
    long exitAfter;

    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override a job setting, e.g. --set precision.linear=fp8 (repeatable).")
    java.util.List<String> overrides = new java.util.ArrayList<>();

    @Override public Integer call() throws Exception {
        if (resume && overwrite) throw new IllegalArgumentException("--resume and --overwrite exclude each other");
        if (allowChanges && !resume) throw new IllegalArgumentException("--allow-changes goes with --resume");
        JobConfig cfg = withOverrides(JobConfig.load(job), overrides);
        var mode = resume ? RunDirectory.Mode.RESUME : overwrite ? RunDirectory.Mode.OVERWRITE : RunDirectory.Mode.FRESH;
        printDone(new Trainer(cfg, System.out).run(mode, exitAfter, allowChanges));
        return 0;
    }

    static void printDone(Trainer.Result r) {
        System.out.printf(Locale.ROOT, "done: step %d, train loss %.4f, val loss %.4f, %,.0f tok/s, %.1f s%n",
                r.step(), r.trainLoss(), r.valLoss(), r.tokensPerSecond(), r.wallSeconds());
    }

    /**
     * The job with every {@code --set KEY=VALUE} applied at once (settings that only make sense together, such as
     * parallel.schedule=interleaved and parallel.virtual_stages=2, are checked together); one that is not of that
     * form is refused by name.
     */
    static JobConfig withOverrides(JobConfig cfg, java.util.List<String> overrides) {
        for (String o : overrides) {
            int eq = o.indexOf('=');
            if (eq <= 0 || o.substring(0, eq).isBlank())
                throw new IllegalArgumentException("--set '" + o + "': expected KEY=VALUE, e.g. --set training.steps=50");
        }
        return overrides.isEmpty() ? cfg : cfg.withOverrides(String.join("\n", overrides));
    }
}
