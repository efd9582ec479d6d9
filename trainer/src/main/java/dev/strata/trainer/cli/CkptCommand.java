package dev.strata.trainer.cli;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.checkpoints.Manifest;
import dev.strata.checkpoints.Storage;
import dev.strata.runtime.DType;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.trainer.hf.HfModels;
import dev.strata.trainer.train.TrainedModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "ckpt", mixinStandardHelpOptions = true, description = "Inspect and verify checkpoints.",
        subcommands = {CkptCommand.Inspect.class, CkptCommand.Verify.class, CkptCommand.ExportHf.class})
final class CkptCommand extends CommandGroup {

    /** What both subcommands take: a checkpoint, or a run directory standing for its latest checkpoint. */
    abstract static class OnCheckpoint implements Callable<Integer> {
        @Parameters(paramLabel = "PATH", description = "checkpoint directory, or run directory for its latest") Path path;
        final Storage fs = new LocalStorage();

        abstract void run(String dir) throws IOException;

        @Override public Integer call() throws Exception {
            run(TrainedModel.resolve(fs, path));
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
                System.out.printf(Locale.ROOT, "    %-48s %-5s %-16s %s%n", t.name(), t.dtype(), java.util.Arrays.toString(t.shape()), t.shards().size() + " shard(s)");
        }
    }

    @Command(name = "verify", mixinStandardHelpOptions = true, description = "Check a checkpoint's manifest and every tensor against their SHA-256, and that no value is NaN or infinite.")
    static final class Verify extends OnCheckpoint {
        @Override void run(String dir) throws IOException {
            var c = Checkpointer.load(fs, dir);
            List<String> poisoned = new ArrayList<>();
            for (var tensors : List.of(c.model(), c.optimizer()))
                tensors.forEach((name, t) -> {
                    long bad = t.nonFiniteCount();
                    if (bad > 0) poisoned.add(String.format(Locale.ROOT, "'%s' (%,d of %,d)", name, bad, t.numel()));
                });
            if (!poisoned.isEmpty())
                throw new IllegalArgumentException(dir + ": checksums match but " + poisoned.size() + " tensor(s) hold NaN or infinite values: "
                        + String.join(", ", poisoned.subList(0, Math.min(5, poisoned.size()))) + (poisoned.size() > 5 ? ", ..." : "")
                        + "; do not resume from it");
            System.out.printf(Locale.ROOT, "OK %s: step %d, %d tensors, %,d bytes, all checksums match%n",
                    dir, c.manifest().step(), c.manifest().tensors().size(), c.manifest().totalBytes());
        }
    }

    @Command(name = "export-hf", mixinStandardHelpOptions = true,
            description = "Write a checkpoint's model as a Hugging Face directory (config.json, safetensors sharded at 5 GB, generation_config.json).")
    static final class ExportHf extends OnCheckpoint {
        @Option(names = "--out", required = true, description = "The directory to create; it must not exist.") Path out;

        @Option(names = "--dtype", defaultValue = "f32", description = "Stored dtype: f32, bf16 or f64 (default ${DEFAULT-VALUE}).") String dtype;

        @Override void run(String dir) throws IOException {
            DType stored = DType.parse(dtype);
            if (stored != DType.F32 && stored != DType.BF16 && stored != DType.F64)
                throw new IllegalArgumentException("--dtype must be f32, bf16 or f64, got " + dtype);
            if (Files.exists(out)) throw new IllegalArgumentException("--out " + out + " already exists; give a new directory");
            TrainedModel t = TrainedModel.load(Path.of(dir), CpuBackend.INSTANCE, null);
            HfModels.save(t.model(), null, out, stored, HfModels.SHARD_BYTES);
            System.out.printf(Locale.ROOT, "exported %s (step %d) to %s as %s%n", dir, Checkpointer.readManifest(fs, dir).step(), out, stored.configName());
        }
    }
}
