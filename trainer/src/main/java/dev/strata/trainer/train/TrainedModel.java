package dev.strata.trainer.train;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.checkpoints.Storage;
import dev.strata.config.JobConfig;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.trainer.model.Transformer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** A model back from a checkpoint: built as the job that wrote it built it (its manifest's settings), with its weights. */
public record TrainedModel(Transformer model, JobConfig job, String checkpoint) {

    /** path: a checkpoint directory, or a run directory (its latest checkpoint); dtype null: the job's, where the backend has it. */
    public static TrainedModel load(Path path, Backend backend, DType dtype) throws IOException {
        Storage fs = new LocalStorage();
        String dir = resolve(fs, path);
        var ckpt = dev.strata.checkpoints.CheckpointReader.open(fs, dir);
        JobConfig job = JobConfig.fromMap(ckpt.manifest().config(), dir + "/" + Checkpointer.MANIFEST);
        DType d = dtype != null ? dtype : defaultDtype(job, backend);
        Transformer model = Models.build(job, backend, d, null, 0, 1);
        TrainingState.restore(model, null, ckpt, true);
        return new TrainedModel(model, job, dir);
    }

    /** The job's dtype where the backend computes in it, else f32. */
    private static DType defaultDtype(JobConfig job, Backend backend) {
        DType d = DType.parse(job.dtype());
        boolean cpu = backend instanceof CpuBackend;
        return (cpu ? d == DType.F32 || d == DType.F64 : d == DType.F32 || d == DType.BF16) ? d : DType.F32;
    }

    /** A checkpoint directory, or a run directory standing for its latest checkpoint. */
    public static String resolve(Storage fs, Path path) throws IOException {
        if (!Files.exists(path)) throw new IllegalArgumentException(path + " does not exist");
        if (Files.exists(path.resolve(Checkpointer.MANIFEST))) return path.toString();
        return Checkpointer.ofRun(fs, path.toString(), Integer.MAX_VALUE).latest().orElseThrow(() ->
                new IllegalArgumentException(path + " is neither a checkpoint (no " + Checkpointer.MANIFEST + ") nor a run directory with one"));
    }
}
