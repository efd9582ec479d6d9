package dev.strata.trainer.hf;

import dev.strata.trainer.model.Stage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.DenseLinear;
import dev.strata.runtime.nn.LoraPlan;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.Transformer;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** LoRA fine-tuning starts from a Hugging Face model exactly (its loss; only adapters move) and is not saved as one. */
class HfLoraTest {
    private static final Backend CPU = CpuBackend.INSTANCE;

    @Test
    void adaptersOnAHuggingFaceModelStartFromItsLossAndAloneMove(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp) throws Exception {
        LoraPlan plan = new LoraPlan(2, 4, List.of("attention", "feed_forward"));
        Transformer model = HfModels.load(HfParityTest.reference("tiny-llama"), CPU, DType.F64,
                cfg -> new Transformer(cfg, CPU, DType.F64, plan.maker(CPU, DType.F64, DenseLinear.maker(CPU, DType.F64)),
                        Stage.whole(cfg))).model();
        LoraPlan.freezeAllButAdapters(model.parameters());
        Initializer.initializeAdapters(model, 1);
        HostTensor ids = HfParityTest.readSafetensors(HfParityTest.reference("tiny-llama-tokens.safetensors")).get("input_ids");
        double want = HfParityTest.readSafetensors(HfParityTest.reference("tiny-llama-expected.safetensors")).get("loss").toDoubles()[0];
        int b = ids.shape()[0], t = ids.shape()[1];
        int[] tokens = ids.toInts(), targets = new int[tokens.length];
        for (int i = 0; i < tokens.length; i++) targets[i] = i % t == t - 1 ? -1 : tokens[i + 1];
        Map<String, double[]> before = new LinkedHashMap<>();
        model.parameters().forEach((name, p) -> before.put(name, CPU.toDoubles(p.value())));
        try (Tensor x = CPU.fromInts(tokens, b, t); Tensor y = CPU.fromInts(targets, b, t);
             AdamW opt = new AdamW(model.parameters(), new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, false))) {
            model.zeroGrad();
            assertEquals(want, model.forwardBackward(x, y, b, t, 1.0 / (b * (t - 1))).mean(), 1e-9 * want,
                    "B starts at zero: the adapted model computes transformers' loss");
            opt.step(1e-2, 1.0);
        }
        model.parameters().forEach((name, p) -> {
            boolean moved = !Arrays.equals(before.get(name), CPU.toDoubles(p.value()));
            assertTrue(!moved || name.contains(".lora_"), name + " is frozen but moved");
            assertTrue(moved || !name.endsWith(".lora_b"), name + " did not train");
        });
        var e = assertThrows(IllegalArgumentException.class, () -> HfModels.save(model, null, tmp.resolve("export"), DType.F32, 1L << 30));
        assertTrue(e.getMessage().contains("LoRA adapters"), e.getMessage());
        assertFalse(java.nio.file.Files.exists(tmp.resolve("export")), "nothing half-written");
    }
}
