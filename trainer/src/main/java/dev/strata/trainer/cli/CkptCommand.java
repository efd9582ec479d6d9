package dev.strata.trainer.cli;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.checkpoints.Manifest;
import dev.strata.checkpoints.Storage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

@Command(name = "ckpt", mixinStandardHelpOptions = true, description = "Inspect and verify checkpoints.",
        subcommands = {CkptCommand.Inspect.class, CkptCommand.Verify.class})
final class CkptCommand implements Runnable {
    @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;

    @Override public void run() { spec.commandLine().usage(System.out); }

    /** A checkpoint directory, or a run directory (its latest checkpoint). */
    static String resolve(Storage fs, Path path) throws IOException {
        if (!Files.exists(path)) throw new IllegalArgumentException(path + " does not exist");
        if (Files.exists(path.resolve(Checkpointer.MANIFEST))) return path.toString();
        return new Checkpointer(fs, path.toString(), Integer.MAX_VALUE).latest().orElseThrow(() ->
                new IllegalArgumentException(path + " is neither a checkpoint (no " + Checkpointer.MANIFEST + ") nor a run directory with one"));
    }

    @Command(name = "inspect", mixinStandardHelpOptions = true, description = "Print a checkpoint's step, state and tensors.")
    static final class Inspect implements Callable<Integer> {
        @Parameters(paramLabel = "PATH", description = "checkpoint directory, or run directory for its latest") Path path;

        @Override public Integer call() throws Exception {
            Storage fs = new LocalStorage();
            String dir = resolve(fs, path);
            Manifest m = Checkpointer.readManifest(fs, dir);
            System.out.printf(Locale.ROOT, "checkpoint %s%n  step %d, written %s%n  data position %s%n  schedule %s%n  metrics %s%n",
                    dir, m.step(), m.createdAt(), m.data(), m.schedule(), m.metrics());
            System.out.printf(Locale.ROOT, "  %d tensors, %,d bytes%n", m.tensors().size(), m.totalBytes());
            for (Manifest.TensorEntry t : m.tensors())
                System.out.printf(Locale.ROOT, "    %-48s %-5s %-16s %s%n", t.name(), t.dtype(), java.util.Arrays.toString(t.shape()), t.file());
            return 0;
        }
    }

    @Command(name = "verify", mixinStandardHelpOptions = true, description = "Check every tensor of a checkpoint against its SHA-256.")
    static final class Verify implements Callable<Integer> {
        @Parameters(paramLabel = "PATH", description = "checkpoint directory, or run directory for its latest") Path path;

        @Override public Integer call() throws Exception {
            Storage fs = new LocalStorage();
            String dir = resolve(fs, path);
            var c = Checkpointer.load(fs, dir);
            System.out.printf(Locale.ROOT, "OK %s: step %d, %d tensors, %,d bytes, all checksums match%n",
                    dir, c.manifest().step(), c.manifest().tensors().size(), c.manifest().totalBytes());
            return 0;
        }
    }
}
