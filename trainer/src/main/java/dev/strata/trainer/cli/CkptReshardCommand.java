package dev.strata.trainer.cli;

import dev.strata.checkpoints.LocalStorage;
import dev.strata.trainer.train.Reshard;
import dev.strata.trainer.train.TrainedModel;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "reshard", mixinStandardHelpOptions = true,
        description = "Rewrite a checkpoint offline as the ranks of another layout write it (every layout resumes every checkpoint as it is; this is for moving between clusters).")
final class CkptReshardCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "PATH", description = "checkpoint directory, or run directory for its latest") Path path;
    @Option(names = "--to", required = true, description = "The layout, e.g. tp=2,pp=2,dp=1 (what it leaves out is 1).") String to;
    @Option(names = "--out", required = true, description = "The checkpoints directory to create (the checkpoint goes in it as step-N, with latest).") Path out;

    @Override public Integer call() throws Exception {
        var fs = new LocalStorage();
        var layout = Reshard.Layout.parse(to);
        String dir = Reshard.run(fs, TrainedModel.resolve(fs, path), layout, out.toString());
        System.out.printf("resharded %s to tp %d × pp %d × dp %d: %s%n", path, layout.tp(), layout.pp(), layout.dp(), dir);
        return 0;
    }
}
