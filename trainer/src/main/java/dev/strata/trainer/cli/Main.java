package dev.strata.trainer.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of the {@code strata} launcher. */
@Command(name = "strata", mixinStandardHelpOptions = true, version = "strata 0.1.0",
        description = "Training and fine-tuning of transformer language models on the JVM.",
        subcommands = {TrainCommand.class, DemoCommand.class, DataCommand.class, ModelCommand.class, CkptCommand.class, BenchCommand.class,
                CommandLine.HelpCommand.class})
public final class Main extends CommandGroup {

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The command line with Strata's error handling: a bad input prints one clear line, not a stack trace. */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
            if (e instanceof IllegalArgumentException || e instanceof IllegalStateException || e instanceof java.io.IOException) {
                cmd.getErr().println("error: " + e.getMessage());
                if (System.getenv("STRATA_DEBUG") != null) e.printStackTrace(cmd.getErr());
                return 2;
            }
            throw e;
        });
        return cl;
    }
}
