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
final class CkptCommand extends CommandGroup {

    /** A checkpoint directory, or a run directory (its latest checkpoint). */
    static String resolve(Storage fs, Path path) throws IOException {
        if (!Files.exists(path)) throw new IllegalArgumentException(path + " does not exist");
        if (Files.exists(path.resolve(Checkpointer.MANIFEST))) return path.toString();
        return new Checkpointer(fs, path.toString(), Integer.MAX_VALUE).latest().orElseThrow(() ->
                new IllegalArgumentException(path + " is neither a checkpoint (no " + Checkpointer.MANIFEST + ") nor a run directory with one"));
    }

    /** What both subcommands take: a checkpoint, or a run directory standing for its latest checkpoint. */
    abstract static class OnCheckpoint implements Callable<Integer> {
        @Parameters(paramLabel = "PATH", description = "checkpoint directory, or run directory for its latest") Path path;
        final Storage fs = new LocalStorage();

        abstract void run(String dir) throws IOException;

        @Override public Integer call() throws Exception {
            run(resolve(fs, path));
            return 0;
        }
    }

    @Command(name = "inspect", mixinStandardHelpOptions = true, description = "Print a checkpoint's step, state and tensors.")
    static final class Inspect extends OnCheckpoint {
        @Override void run(String dir) throws IOException {
            Manifest m = Checkpointer.readManifest(fs, dir);
            System.out.printf(Locale.ROOT, "checkpoint %s%n  step %d, written %s%n  data position %s%n  schedule %s%n  metrics %s%n",
                    dir, m.step(), m.createdAt(), m.data(), m.schedule(), m.metrics());
            System.out.printf(Locale.ROOT, "  %d tensors, %,d bytes%n", m.tensors().size(), m.totalBytes());
            for (Manifest.TensorEntry t : m.tensors())
                System.out.printf(Locale.ROOT, "    %-48s %-5s %-16s %s%n", t.name(), t.dtype(), java.util.Arrays.toString(t.shape()), t.file());
        }
    }

    @Command(name = "verify", mixinStandardHelpOptions = true, description = "Check every tensor of a checkpoint against its SHA-256.")
    static final class Verify extends OnCheckpoint {
        @Override void run(String dir) throws IOException {
            var c = Checkpointer.load(fs, dir);
            System.out.printf(Locale.ROOT, "OK %s: step %d, %d tensors, %,d bytes, all checksums match%n",
                    dir, c.manifest().step(), c.manifest().tensors().size(), c.manifest().totalBytes());
        }
    }
}
