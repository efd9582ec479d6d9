package dev.strata.trainer.cli;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.config.JobConfig;
import dev.strata.trainer.train.RunDirectory;
import dev.strata.trainer.train.TrainedModel;
import dev.strata.trainer.train.Trainer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "resume", mixinStandardHelpOptions = true,
        description = "Continue a run from a checkpoint, at any layout: in its own run directory (strata train --resume), or into a new one (--set run_dir=...).")
final class CkptResumeCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "PATH", description = "checkpoint directory, or run directory for its latest") Path path;
    @Parameters(index = "1", arity = "0..1", paramLabel = "JOB", description = "job file; without one, the settings the checkpoint was written with") Path job;
    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override a job setting, e.g. --set parallel.tp=2 (repeatable).") List<String> overrides = new ArrayList<>();
    @Option(names = "--allow-changes", description = "Accept changed batch size, sequence length, data, seed or schedule (recorded in metrics.jsonl).") boolean allowChanges;
    @Option(names = "--exit-after", paramLabel = "STEP", defaultValue = "0", description = "Checkpoint and stop after this step, as if interrupted.") long exitAfter;

    @Override public Integer call() throws Exception {
        var fs = new LocalStorage();
        String dir = TrainedModel.resolve(fs, path);
        var m = Checkpointer.readManifest(fs, dir);
        JobConfig cfg = TrainCommand.withOverrides(job != null ? JobConfig.load(job) : JobConfig.fromMap(m.config(), dir + "/" + Checkpointer.MANIFEST), overrides);
        Path own = Path.of(cfg.checkpoint().dirFor(cfg.runDir())).toAbsolutePath().normalize();
        RunDirectory.Mode mode;
        if (Path.of(dir).toAbsolutePath().normalize().getParent().equals(own)) {
            String latest = new Checkpointer(fs, own.toString(), 1, 0).latest().orElse(null);
            if (latest != null && !Path.of(latest).toAbsolutePath().normalize().equals(Path.of(dir).toAbsolutePath().normalize()))
                throw new IllegalArgumentException(dir + " is not the latest checkpoint of its run (" + latest + "); resuming it there would overwrite the "
                        + "later ones: resume it into a new run directory with --set run_dir=...");
            mode = RunDirectory.Mode.RESUME;
        } else {
            cfg = cfg.withOverrides("checkpoint.resume_from = \"" + dir.replace("\\", "\\\\").replace("\"", "\\\"") + "\"");
            mode = RunDirectory.Mode.FRESH;
        }
        TrainCommand.printDone(new Trainer(cfg, System.out).run(mode, exitAfter, allowChanges));
        return 0;
    }
}
