package dev.strata.trainer.hf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.checkpoints.LocalStorage;
import dev.strata.checkpoints.Safetensors;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.trainer.cli.Main;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad model directories get errors naming the file and what was expected; the parity tool works from the CLI. */
class HfInputErrorsTest {

    static Path copyOfTinyGpt2(Path tmp) throws Exception {
        Path src = HfParityTest.reference("tiny-gpt2"), dst = tmp.resolve("model");
        Files.createDirectories(dst);
        try (var files = Files.list(src)) {
            for (Path f : files.toList()) Files.copy(f, dst.resolve(f.getFileName()));
        }
        return dst;
    }

    @Test
    void unsupportedModelTypeIsNamed(@TempDir Path tmp) throws Exception {
        Path dir = copyOfTinyGpt2(tmp);
        Path config = dir.resolve("config.json");
        Files.writeString(config, Files.readString(config).replace("\"gpt2\"", "\"mamba\""));
        var e = assertThrows(IllegalArgumentException.class, () -> HfModels.load(dir, CpuBackend.INSTANCE, DType.F64));
        assertTrue(e.getMessage().contains(config.toString()) && e.getMessage().contains("model_type 'mamba'"), e.getMessage());
    }

    @Test
    void missingTensorIsNamed(@TempDir Path tmp) throws Exception {
        Path dir = copyOfTinyGpt2(tmp);
        Path weights = dir.resolve("model.safetensors");
        Map<String, HostTensor> tensors = new LinkedHashMap<>(Safetensors.read(new LocalStorage(), weights.toString()).tensors());
        Map<String, HostTensor> copy = new LinkedHashMap<>();
        tensors.forEach((k, v) -> copy.put(k, HostTensor.ofDoubles(v.toDoubles(), v.dtype(), v.shape())));
        copy.remove("transformer.h.1.mlp.c_fc.weight");
        try (OutputStream out = Files.newOutputStream(weights)) {
            Safetensors.write(out, copy, Map.of());
        }
        var e = assertThrows(IllegalArgumentException.class, () -> HfModels.load(dir, CpuBackend.INSTANCE, DType.F64));
        assertTrue(e.getMessage().contains(dir.toString()) && e.getMessage().contains("'transformer.h.1.mlp.c_fc.weight'"), e.getMessage());
    }

    @Test
    void missingConfigAndBadShapeAreNamed(@TempDir Path tmp) throws Exception {
        Path dir = copyOfTinyGpt2(tmp);
        Path config = dir.resolve("config.json");
        Files.writeString(config, Files.readString(config).replace("\"n_embd\": 24", "\"n_embd\": 30"));
        var shape = assertThrows(IllegalArgumentException.class, () -> HfModels.load(dir, CpuBackend.INSTANCE, DType.F64));
        assertTrue(shape.getMessage().contains("has shape") && shape.getMessage().contains("config.json implies"), shape.getMessage());
        Files.delete(config);
        var missing = assertThrows(IllegalArgumentException.class, () -> HfModels.load(dir, CpuBackend.INSTANCE, DType.F64));
        assertTrue(missing.getMessage().contains("has no config.json"), missing.getMessage());
    }

    @Test
    void gradCommandWritesWhatTheParityTestChecks(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("grads.safetensors");
        int code = Main.commandLine().execute("model", "grad", "--model", HfParityTest.reference("tiny-llama").toString(),
                "--tokens", HfParityTest.reference("tiny-llama-tokens.safetensors").toString(), "--out", out.toString());
        assertEquals(0, code);
        Map<String, HostTensor> actual = HfParityTest.readSafetensors(out);
        Map<String, HostTensor> expected = HfParityTest.readSafetensors(HfParityTest.reference("tiny-llama-expected.safetensors"));
        assertEquals(expected.keySet(), actual.keySet());
        for (var e : expected.entrySet())
            assertTrue(HfParityTest.relativeError(actual.get(e.getKey()).toDoubles(), e.getValue().toDoubles()) < 1e-9, e.getKey());
        assertEquals(DType.F64, actual.get("loss").dtype());
        assertEquals(2, Main.commandLine().execute("model", "grad", "--model", tmp.resolve("nowhere").toString(),
                "--tokens", HfParityTest.reference("tiny-llama-tokens.safetensors").toString(), "--out", out.toString()));
    }
}
