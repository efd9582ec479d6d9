package dev.strata.trainer.cli;

import dev.strata.checkpoints.LocalStorage;
import dev.strata.checkpoints.Safetensors;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.trainer.hf.ParityGrad;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "model", mixinStandardHelpOptions = true, description = "Work with Hugging Face model directories.",
        subcommands = ModelCommand.Grad.class)
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
            DType d = DType.parse(dtype);
            Backend b = switch (backend) {
                case "cpu" -> CpuBackend.INSTANCE;
                case "cuda" -> CudaBackend.open(0);
                default -> throw new IllegalArgumentException("--backend must be cpu or cuda, got " + backend);
            };
            boolean ok = b instanceof CpuBackend ? d == DType.F64 || d == DType.F32 : d == DType.F32 || d == DType.BF16;
            if (!ok) throw new IllegalArgumentException("--dtype " + dtype + " is not available on the " + backend + " backend"
                    + (b instanceof CpuBackend ? " (f64 or f32)" : " (f32 or bf16)"));
            HostTensor ids = Safetensors.read(new LocalStorage(), tokens.toString()).tensors().get("input_ids");
            if (ids == null) throw new IllegalArgumentException(tokens + " has no tensor 'input_ids'");
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
}
