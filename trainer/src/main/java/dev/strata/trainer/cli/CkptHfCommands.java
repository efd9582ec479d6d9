package dev.strata.trainer.cli;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.runtime.DType;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.trainer.hf.HfModels;
import dev.strata.trainer.train.HfImport;
import dev.strata.trainer.train.TrainedModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** Checkpoints to and from Hugging Face directories. */
final class CkptHfCommands {
    private CkptHfCommands() {}

    @Command(name = "export-hf", mixinStandardHelpOptions = true,
            description = "Write a checkpoint's model (of any layout) as a Hugging Face directory (config.json, safetensors sharded at 5 GB, generation_config.json).")
    static final class ExportHf extends CkptCommand.OnCheckpoint {
        @Option(names = "--out", required = true, description = "The directory to create; it must not exist.") Path out;

        @Option(names = "--dtype", defaultValue = "f32", description = "Stored dtype: f32, bf16 or f64 (default ${DEFAULT-VALUE}).") String dtype;

        @Override int run(String dir) throws IOException {
            DType stored = DType.parse(dtype);
            if (stored != DType.F32 && stored != DType.BF16 && stored != DType.F64)
                throw new IllegalArgumentException("--dtype must be f32, bf16 or f64, got " + dtype);
            if (Files.exists(out)) throw new IllegalArgumentException("--out " + out + " already exists; give a new directory");
            TrainedModel t = TrainedModel.load(Path.of(dir), CpuBackend.INSTANCE, null);
            HfModels.save(t.model(), null, out, stored, HfModels.SHARD_BYTES);
            System.out.printf(Locale.ROOT, "exported %s (step %d) to %s as %s%n", dir, Checkpointer.readManifest(fs, dir).step(), out, stored.configName());
            return 0;
        }
    }

    @Command(name = "import-hf", mixinStandardHelpOptions = true,
            description = "Make a Hugging Face directory a Strata checkpoint of step 0 (its weights, fresh optimizer state), to resume or fine-tune at any layout.")
    static final class ImportHf implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "DIR", description = "a Hugging Face model directory (config.json, *.safetensors)") Path dir;
        @Option(names = "--out", required = true, description = "The checkpoints directory to create (the checkpoint goes in it as step-00000000).") Path out;

        @Override public Integer call() throws Exception {
            String made = HfImport.run(new LocalStorage(), dir, out.toString());
            System.out.printf("imported %s as %s%n", dir, made);
            return 0;
        }
    }
}
