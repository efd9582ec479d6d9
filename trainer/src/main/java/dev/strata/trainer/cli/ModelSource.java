package dev.strata.trainer.cli;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.trainer.hf.HfModels;
import dev.strata.trainer.model.Transformer;
import dev.strata.trainer.train.TrainedModel;
import java.io.IOException;
import java.nio.file.Path;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Option;

/** Where generate and eval take their model from: a Strata checkpoint (or run directory), or a Hugging Face directory. */
final class ModelSource {
    @ArgGroup(exclusive = true, multiplicity = "1") Choice choice;

    static final class Choice {
        @Option(names = "--checkpoint", paramLabel = "PATH", description = "A checkpoint directory, or a run directory (its latest checkpoint).")
        Path checkpoint;

        @Option(names = "--model", paramLabel = "HF_DIR", description = "A Hugging Face llama or gpt2 model directory.")
        Path model;
    }

    @Option(names = "--backend", defaultValue = "auto", description = "cpu, cuda, or auto: the GPU when one is usable (default ${DEFAULT-VALUE}).")
    String backend;

    @Option(names = "--dtype", description = "f32 or f64 on the CPU, f32 or bf16 on CUDA (default: the checkpoint's, else f32 / bf16).")
    String dtype;

    /** The model, with the training seq_len its checkpoint used (0 for a Hugging Face directory). */
    record Loaded(Transformer model, int seqLen, String name) {}

    Loaded load() throws IOException {
        Backend b = ModelCommand.open(backend);
        if (choice.checkpoint != null) {
            TrainedModel t = TrainedModel.load(choice.checkpoint, b, dtype == null ? null : ModelCommand.checkDtype(b, backend, DType.parse(dtype)));
            return new Loaded(t.model(), t.job().training().seqLen(), t.checkpoint());
        }
        DType d = dtype != null ? DType.parse(dtype) : b instanceof dev.strata.runtime.cpu.CpuBackend ? DType.F32 : DType.BF16;
        return new Loaded(HfModels.load(choice.model, b, ModelCommand.checkDtype(b, backend, d)).model(), 0, choice.model.toString());
    }
}
