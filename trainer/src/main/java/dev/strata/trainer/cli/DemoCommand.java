package dev.strata.trainer.cli;

import dev.strata.config.JobConfig;
import dev.strata.trainer.data.DataPrep;
import dev.strata.trainer.data.TokenDataset;
import dev.strata.trainer.data.UnigramBaseline;
import dev.strata.trainer.train.RunDirectory;
import dev.strata.trainer.train.Trainer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Train a small GPT on tinyshakespeare on the CPU, checkpoint it and print a sample.")
final class DemoCommand implements Callable<Integer> {
    @Option(names = "--steps", description = "Override training.steps of the demo job.")
    Integer steps;

    @Override public Integer call() throws Exception {
        Path home = Path.of(System.getProperty("strata.home", "."));
        Path text = home.resolve("examples/data/tinyshakespeare.txt"), data = home.resolve("runs/demo/data");
        if (!Files.exists(data.resolve(DataPrep.META))) {
            System.out.println("tokenizing " + text + " -> " + data);
            var s = DataPrep.prepare(text, data, 0.1, 1 << 20, true, p -> {});
            System.out.printf(Locale.ROOT, "%,d train and %,d validation tokens%n", s.trainTokens(), s.valTokens());
        }
        JobConfig job = JobConfig.load(home.resolve("examples/gpt-shakespeare.conf")).withOverrides(
                "run_dir = \"" + home.resolve("runs/demo/run") + "\"\ndata.dir = \"" + data + "\""
                        + (steps != null ? "\ntraining.steps = " + steps : ""));
        var result = new Trainer(job, System.out).run(RunDirectory.Mode.OVERWRITE, 0);

        int t = job.training().seqLen();
        double unigram = UnigramBaseline.loss(new TokenDataset(data, "train", t), new TokenDataset(data, "val", t));
        System.out.printf(Locale.ROOT, "train loss %.4f | val loss %.4f | unigram baseline %.4f | %,.0f tok/s | %.1f s%n",
                result.trainLoss(), result.valLoss(), unigram, result.tokensPerSecond(), result.wallSeconds());
        System.out.println("checkpoint: " + result.checkpoint());
        return 0;
    }
}
