package dev.strata.trainer.hf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.checkpoints.HfDirectory;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.checkpoints.Safetensors;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.AdamW;
import dev.strata.trainer.model.Transformer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeSet;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Parity with Hugging Face transformers on the fixtures made by tools/reference/make_reference.py: logits, loss and
 * every gradient of a tiny Llama (GQA, sharded checkpoint) and a tiny GPT-2 (Conv1D, tied embeddings), and five
 * AdamW steps with clipping.
 */
class HfParityTest {
    static final CpuBackend CPU = CpuBackend.INSTANCE;

    static Path reference(String name) throws Exception {
        return Path.of(HfParityTest.class.getResource("/reference/" + name).toURI());
    }

    static Map<String, HostTensor> readSafetensors(Path p) throws Exception {
        return Safetensors.read(new LocalStorage(), p.toString()).tensors();
    }

    /** ‖a − b‖ / ‖b‖ over all elements. */
    static double relativeError(double[] a, double[] b) {
        assertEquals(b.length, a.length);
        double diff = 0, ref = 0;
        for (int i = 0; i < a.length; i++) {
            diff += (a[i] - b[i]) * (a[i] - b[i]);
            ref += b[i] * b[i];
        }
        return Math.sqrt(diff / ref);
    }

    @ParameterizedTest
    @CsvSource({"llama, F64, 1e-9", "gpt2, F64, 1e-9", "llama, F32, 1e-4", "gpt2, F32, 1e-4"})
    void logitsLossAndGradientsMatchTransformers(String kind, DType dtype, double tolerance) throws Exception {
        HostTensor ids = readSafetensors(reference("tiny-" + kind + "-tokens.safetensors")).get("input_ids");
        Map<String, HostTensor> expected = readSafetensors(reference("tiny-" + kind + "-expected.safetensors"));
        Map<String, HostTensor> actual = ParityGrad.compute(reference("tiny-" + kind), ids, CPU, dtype);
        assertEquals(new TreeSet<>(expected.keySet()), new TreeSet<>(actual.keySet()), "same tensors as transformers");
        double worst = 0;
        String worstName = "";
        for (var e : expected.entrySet()) {
            HostTensor a = actual.get(e.getKey());
            assertArrayEquals(e.getValue().shape(), a.shape(), e.getKey() + " shape");
            double err = relativeError(a.toDoubles(), e.getValue().toDoubles());
            assertTrue(err < tolerance, kind + " " + dtype + " " + e.getKey() + ": relative error " + err);
            if (err > worst) {
                worst = err;
                worstName = e.getKey();
            }
        }
        System.out.printf("parity %s %s: worst relative error %.3e (%s), loss %.12f%n", kind, dtype, worst, worstName,
                actual.get("loss").toDoubles()[0]);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama", "gpt2"})
    void fiveAdamWStepsMatchTorch(String kind) throws Exception {
        Map<String, HostTensor> ref = readSafetensors(reference("tiny-" + kind + "-adamw.safetensors"));
        HfModels.Loaded loaded = HfModels.load(reference("tiny-" + kind), CPU, DType.F64);
        Transformer model = loaded.model();
        AdamW opt = new AdamW(model.parameters(), new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, false));
        double[] losses = ref.get("losses").toDoubles(), lrs = ref.get("lrs").toDoubles();
        for (int step = 0; step < losses.length; step++) {
            HostTensor idsHost = ref.get("input_ids." + step);
            int b = idsHost.shape()[0], t = idsHost.shape()[1];
            int[] ids = idsHost.toInts(), targets = new int[ids.length];
            for (int i = 0; i < ids.length; i++) targets[i] = i % t == t - 1 ? -1 : ids[i + 1];
            model.zeroGrad();
            try (Tensor idsT = CPU.fromInts(ids, b, t); Tensor targetsT = CPU.fromInts(targets, b, t)) {
                double loss = model.forwardBackward(idsT, targetsT, b, t, 1.0 / (b * (t - 1))).mean();
                assertEquals(losses[step], loss, 1e-9 * losses[step], kind + " loss at step " + step);
            }
            opt.step(lrs[step], 0.5);
        }
        Map<String, HostTensor> weights = HfModels.toHf(model, loaded.mappings(), p -> model.backend().toDoubles(p.value()), DType.F64);
        double worst = 0;
        for (var e : weights.entrySet()) {
            double err = relativeError(e.getValue().toDoubles(), ref.get("final." + e.getKey()).toDoubles());
            assertTrue(err < 1e-9, kind + " " + e.getKey() + " after 5 AdamW steps: relative error " + err);
            worst = Math.max(worst, err);
        }
        System.out.printf("adamw %s: 5 steps, worst weight relative error %.3e%n", kind, worst);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama", "gpt2"})
    void exportWritesTheSameDirectoryLayoutAndTensors(String kind, @TempDir Path tmp) throws Exception {
        HfDirectory original = HfDirectory.read(reference("tiny-" + kind));
        HfModels.Loaded loaded = HfModels.load(reference("tiny-" + kind), CPU, DType.F64);
        Path out = tmp.resolve("export");
        long shardBytes = original.sharded() ? 20_000 : Long.MAX_VALUE;
        HfModels.save(loaded.model(), loaded.hfConfig(), out, DType.F64, shardBytes);
        HfDirectory again = HfDirectory.read(out);
        assertEquals(original.sharded(), again.sharded(), "sharded layout kept");
        assertEquals(Files.exists(reference("tiny-" + kind).resolve(HfDirectory.INDEX)), Files.exists(out.resolve(HfDirectory.INDEX)));
        assertEquals(new TreeSet<>(original.tensors().keySet()), new TreeSet<>(again.tensors().keySet()));
        for (var e : original.tensors().entrySet())
            assertArrayEquals(e.getValue().toDoubles(), again.tensor(e.getKey()).toDoubles(), e.getKey());
        assertEquals(original.config().get("model_type"), again.config().get("model_type"));
    }
}
