package dev.strata.trainer.cli;

import dev.strata.checkpoints.LocalStorage;
import dev.strata.checkpoints.Safetensors;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.trainer.hf.ParityGrad;
import dev.strata.trainer.hf.ParitySteps;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "model", mixinStandardHelpOptions = true, description = "Work with Hugging Face model directories.",
        subcommands = {ModelCommand.Grad.class, ModelCommand.Steps.class})
final class ModelCommand extends CommandGroup {

    @Command(name = "grad", mixinStandardHelpOptions = true,
            description = "Logits, loss and every parameter's gradient for input_ids, as transformers computes them with labels = input_ids.")
    static final class Grad implements Callable<Integer> {
        @Option(names = "--model", required = true, description = "HF model directory (config.json + safetensors).")
        Path model;

        @Option(names = "--tokens", required = true, description = "safetensors file with input_ids [batch, seq] (int64 or int32).")
        Path tokens;

        @Option(names = "--out", required = true, description = "safetensors file to write: logits, loss, grad.<name>.")
        Path out;

        @Option(names = "--dtype", defaultValue = "f64", description = "f64 or f32 on the CPU; f32 or bf16 on CUDA (default ${DEFAULT-VALUE}).")
        String dtype;

        @Option(names = "--backend", defaultValue = "cpu", description = "cpu or cuda (default ${DEFAULT-VALUE}).")
        String backend;

        @Override public Integer call() throws Exception {
            if (Files.isDirectory(out)) throw new IllegalArgumentException("--out " + out + " is a directory; give the safetensors file to write");
            DType d = DType.parse(dtype);
            Backend b = open(backend, d);
            HostTensor ids = inputIds(tokens);
            Map<String, HostTensor> result = ParityGrad.compute(model, ids, b, d);
            Path tmp = out.resolveSibling(out.getFileName() + ".tmp");
            try (OutputStream o = Files.newOutputStream(tmp)) {
                Safetensors.write(o, result, Map.of("format", "pt"));
            }
            Files.move(tmp, out, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            System.out.printf("loss %.12f; %d tensors written to %s%n", result.get("loss").toDoubles()[0], result.size(), out);
            return 0;
        }
    }

    /** The backend for --backend, refusing a dtype it does not compute in. */
    static Backend open(String backend, DType d) {
        Backend b = open(backend);
        checkDtype(b, backend, d);
        return b;
    }

    /** cpu, cuda, or auto (the GPU when one is usable). */
    static Backend open(String backend) {
        if (!java.util.List.of("cpu", "cuda", "auto").contains(backend))
            throw new IllegalArgumentException("--backend must be cpu, cuda or auto, got " + backend);
        return dev.strata.trainer.train.Models.backend(backend);
    }

    static DType checkDtype(Backend b, String backend, DType d) {
        boolean ok = b instanceof CpuBackend ? d == DType.F64 || d == DType.F32 : d == DType.F32 || d == DType.BF16;
        if (!ok) throw new IllegalArgumentException("--dtype " + d.configName() + " is not available on the " + backend + " backend"
                + (b instanceof CpuBackend ? " (f64 or f32)" : " (f32 or bf16)"));
        return d;
    }

    static HostTensor inputIds(Path tokens) throws java.io.IOException {
        HostTensor ids = Safetensors.read(new LocalStorage(), tokens.toString()).tensors().get("input_ids");
        if (ids == null) throw new IllegalArgumentException(tokens + " has no tensor 'input_ids'");
        return ids;
    }

    @Command(name = "steps", mixinStandardHelpOptions = true,
            description = "Train a Hugging Face model one AdamW step per given batch and print each step's loss (the training parity tool).")
    static final class Steps implements Callable<Integer> {
        @Option(names = "--model", required = true, description = "HF model directory (config.json + safetensors).")
        Path model;

        @Option(names = "--tokens", required = true, description = "safetensors file with input_ids [steps, batch, seq + 1].")
        Path tokens;

        @Option(names = "--out", description = "JSON file to write the losses to.")
        Path out;

        @Option(names = "--dtype", defaultValue = "f32", description = "f64 or f32 on the CPU; f32 or bf16 on CUDA (default ${DEFAULT-VALUE}).")
        String dtype;

        @Option(names = "--backend", defaultValue = "cpu", description = "cpu or cuda (default ${DEFAULT-VALUE}).")
        String backend;

        @Option(names = "--lr", defaultValue = "3e-4", description = "Peak learning rate (default ${DEFAULT-VALUE}).")
        double lr;

        @Option(names = "--min-lr", defaultValue = "3e-5", description = "Learning rate at the last step (default ${DEFAULT-VALUE}).")
        double minLr;

        @Option(names = "--warmup", defaultValue = "10", description = "Warm-up steps (default ${DEFAULT-VALUE}).")
        int warmup;

        @Option(names = "--weight-decay", defaultValue = "0.1", description = "On linear weights only (default ${DEFAULT-VALUE}).")
        double weightDecay;

        @Option(names = "--grad-clip", defaultValue = "1.0", description = "Global-norm clipping, 0 for none (default ${DEFAULT-VALUE}).")
        double gradClip;

        @Override public Integer call() throws Exception {
            DType d = DType.parse(dtype);
            double[] losses = ParitySteps.run(model, inputIds(tokens), open(backend, d), d,
                    new ParitySteps.Settings(lr, minLr, warmup, weightDecay, gradClip));
            String json = java.util.Arrays.stream(losses).mapToObj(l -> String.format(java.util.Locale.ROOT, "%.8f", l))
                    .collect(java.util.stream.Collectors.joining(", ", "{\"losses\": [", "]}"));
            for (int i = 0; i < losses.length; i++) System.out.printf(java.util.Locale.ROOT, "step %d loss %.6f%n", i + 1, losses[i]);
            if (out != null) Files.writeString(out, json + "\n");
            return 0;
        }
    }
}
