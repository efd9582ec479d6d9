package dev.strata.trainer.cli;

import dev.strata.trainer.data.DataPrep;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "data", mixinStandardHelpOptions = true, description = "Prepare training data.",
        subcommands = DataCommand.Prepare.class)
final class DataCommand extends CommandGroup {

    @Command(name = "prepare", mixinStandardHelpOptions = true,
            description = "Tokenize a .txt or .jsonl file (GPT-2 BPE) into train/val token shards.")
    static final class Prepare implements Callable<Integer> {
        @Option(names = "--input", required = true, description = "A .txt file, or .jsonl with one {\"text\": ...} per line.")
        Path input;

        @Option(names = "--out", required = true, description = "Directory for train-NNNNN.bin, val-NNNNN.bin and meta.json.")
        Path out;

        @Option(names = "--val-fraction", defaultValue = "0.1", description = "Share of tokens for validation (default ${DEFAULT-VALUE}).")
        double valFraction;

        @Option(names = "--shard-tokens", defaultValue = "100000000", description = "Tokens per shard file (default ${DEFAULT-VALUE}).")
        int shardTokens;

        @Option(names = "--overwrite", description = "Replace the data set already in --out (its shards and meta.json only).")
        boolean overwrite;

        @Override public Integer call() throws Exception {
            var s = DataPrep.prepare(input, out, valFraction, shardTokens, overwrite, p -> {
                if (p.bytesRead() < p.bytesTotal())
                    System.out.printf(Locale.ROOT, "tokenizing %s: %.0f%% (%,d of %,d bytes), %,d tokens%n", input,
                            100.0 * p.bytesRead() / p.bytesTotal(), p.bytesRead(), p.bytesTotal(), p.tokens());
            });
            System.out.printf(Locale.ROOT, "%s: %,d train tokens, %,d validation tokens, %d shard(s) in %s%n",
                    input, s.trainTokens(), s.valTokens(), s.shards(), out);
            return 0;
        }
    }
}
