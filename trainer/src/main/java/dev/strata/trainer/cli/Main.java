package dev.strata.trainer.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.FileSystemException;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of the {@code strata} launcher. */
@Command(name = "strata", mixinStandardHelpOptions = true, version = "strata 0.1.0",
        description = {"Training and fine-tuning of transformer language models on the JVM.",
                "Errors print one line; --debug (or STRATA_DEBUG=1) adds the stack trace."},
        subcommands = {TrainCommand.class, FinetuneCommand.class, DemoCommand.class, DataCommand.class, ModelCommand.class, CkptCommand.class,
                GenerateCommand.class, EvalCommand.class, BenchCommand.class, PlanCommand.class, ClusterCommand.class, JobCommands.Submit.class,
                JobCommands.Jobs.class, JobCommands.Status.class, JobCommands.Logs.class, JobCommands.Cancel.class, WorkerCommand.class, CommandLine.HelpCommand.class})
public final class Main extends CommandGroup {

    public static void main(String[] args) {
        List<String> rest = new ArrayList<>(List.of(args));
        boolean debug = rest.remove("--debug") || System.getenv("STRATA_DEBUG") != null && !System.getenv("STRATA_DEBUG").isEmpty();
        System.exit(commandLine(debug).execute(rest.toArray(String[]::new)));
    }

    public static CommandLine commandLine() { return commandLine(false); }

    /**
     * The command line with Strata's error handling: whatever goes wrong prints one line, "error: ...", and exits
     * non-zero (2 for a bad input, 1 for a fault of ours); {@code debug} adds the stack trace.
     */
    public static CommandLine commandLine(boolean debug) {
        CommandLine cl = new CommandLine(new Main());
        // Durations as job files write them: 500ms, 30s, 10m.
        cl.registerConverter(java.time.Duration.class, text -> com.typesafe.config.ConfigFactory.parseString("d = \"" + text + "\"").getDuration("d"));
        cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
            cmd.getErr().println("error: " + oneLine(e));
            if (debug) e.printStackTrace(cmd.getErr());
            cmd.getErr().flush();
            return userError(e) ? 2 : 1;
        });
        cl.setParameterExceptionHandler((e, args) -> {
            var err = e.getCommandLine().getErr();
            err.println("error: " + e.getMessage() + " (see '" + e.getCommandLine().getCommandSpec().qualifiedName() + " --help')");
            if (debug) e.printStackTrace(err);
            err.flush();
            return 2;
        });
        return cl;
    }

    private static boolean userError(Throwable e) {
        return e instanceof IllegalArgumentException || e instanceof IllegalStateException || e instanceof IOException
                || e instanceof UncheckedIOException;
    }

    /** The message a user can act on: file-system errors say what the path is and what went wrong, not the bare path. */
    static String oneLine(Throwable e) {
        Throwable cause = e instanceof UncheckedIOException u ? u.getCause() : e;
        String message = switch (cause) {
            case java.nio.file.NoSuchFileException f -> f.getFile() + " does not exist";
            case java.nio.file.FileAlreadyExistsException f -> f.getFile() + " already exists (a file where a directory was expected?)";
            case java.nio.file.NotDirectoryException f -> f.getFile() + " is not a directory";
            case java.nio.file.AccessDeniedException f -> f.getFile() + ": permission denied";
            case FileSystemException f -> f.getFile() + ": " + (f.getReason() != null ? f.getReason() : f.getClass().getSimpleName());
            case java.nio.charset.CharacterCodingException c -> "input is not valid UTF-8 text";
            default -> cause.getMessage();
        };
        if (message == null || message.isBlank()) message = cause.getClass().getSimpleName();
        if (!userError(e)) message = "internal error: " + cause.getClass().getSimpleName() + ": " + message + " (rerun with --debug for the trace)";
        int newline = message.indexOf('\n');
        return newline < 0 ? message : message.substring(0, newline);
    }
}
