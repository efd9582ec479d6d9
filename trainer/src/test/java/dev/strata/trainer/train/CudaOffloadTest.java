package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.offload.OffloadedAdamW;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.runtime.nn.ActivationOffload;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.nn.Optimizer;
import dev.strata.trainer.model.ActivationCheckpointing;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Offload on the GPU, where copies run on their own streams and only events order them: AdamW's state in pinned
 * memory and in files, half of it updated by the CPU, trains as AdamW on the device does and hands its moments to
 * a checkpoint from where they live; recomputed blocks' inputs kept on the host change no loss.
 */
@Tag("gpu")
class CudaOffloadTest {
    static final String UNAVAILABLE = CudaBackend.unavailableReason();
    static final AdamW.Settings ADAM = new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, false);

    @Test
    void offloadedStateTrainsAsTheDevicesDoes(@TempDir Path nvme) {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CUDA offload test skipped: " + UNAVAILABLE);
        Steps device = train(model -> new AdamW(model.parameters(), ADAM), false);
        for (String tier : new String[] {"cpu", "nvme"}) {
            Steps offloaded = train(model -> new OffloadedAdamW(model.parameters(), new OffloadedAdamW.Settings(ADAM, tier, nvme, 0.5, 4, 20_000, 0),
                    GradientSync.NONE, new PrintStream(PrintStream.nullOutputStream())), false);
            // f32 weights and moments: the CPU's AdamW and the kernel differ by rounding (the kernel contracts to FMA)
            assertArrayEquals(device.losses(), offloaded.losses(), 1e-5, tier + ": losses against AdamW on the device");
            for (var e : device.moments().entrySet()) {
                double[] a = e.getValue(), b = offloaded.moments().get(e.getKey());
                for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], 1e-6 + 1e-3 * Math.abs(a[i]), tier + ": " + e.getKey() + "[" + i + "]");
            }
            System.out.printf("offload %s on the GPU, 8 steps: losses %s (device AdamW %s)%n", tier, Arrays.toString(offloaded.losses()), Arrays.toString(device.losses()));
        }
    }

    @Test
    void recomputedInputsOnTheHostChangeNoLoss() {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CUDA activation offload test skipped: " + UNAVAILABLE);
        Steps device = train(model -> new AdamW(model.parameters(), ADAM), false), host = train(model -> new AdamW(model.parameters(), ADAM), true);
        // not bit-identical on the GPU: attention's dq adds with atomics, in no fixed order
        assertArrayEquals(device.losses(), host.losses(), 2e-3, "losses with the recomputed blocks' inputs on the host");
        assertTrue(host.losses()[7] < host.losses()[0], "it learns: " + Arrays.toString(host.losses()));
    }

    record Steps(double[] losses, Map<String, double[]> moments) {}

    /** Eight f32 steps of a small Llama on one repeated batch, every block recomputed; the moments after, from where they live. */
    static Steps train(java.util.function.Function<Transformer, Optimizer> optimizer, boolean inputsOnHost) {
        try (CudaBackend gpu = CudaBackend.open(0); ActivationOffload acts = new ActivationOffload(gpu)) {
            ModelConfig cfg = ModelConfig.llama(1000, 128, 2, 2, 1, 352, 96);
            Transformer model = new Transformer(cfg, gpu, DType.F32);
            Initializer.initialize(model, 7);
            model.checkpointActivations(ActivationCheckpointing.FULL);
            if (inputsOnHost) model.offloadActivations(acts);
            int b = 3, t = 64;
            int[] tokens = new SplittableRandom(3).ints((long) b * t + 1, 0, cfg.vocabSize()).toArray();
            int[][] inputs = {Arrays.copyOfRange(tokens, 0, b * t)}, targets = {Arrays.copyOfRange(tokens, 1, b * t + 1)};
            double[] losses = new double[8];
            try (Optimizer opt = optimizer.apply(model); TrainStep step = new TrainStep(model, opt, b, t, 1, 1.0, false)) {
                for (int s = 0; s < losses.length; s++) losses[s] = step.run(inputs, targets, 3e-3).loss();
                Map<String, double[]> moments = new java.util.TreeMap<>();
                if (opt.stateOnHost()) for (Map.Entry<String, HostTensor> e : opt.hostState().entrySet()) moments.put(e.getKey(), e.getValue().toDoubles());
                else opt.state().forEach((k, v) -> moments.put(k, gpu.toDoubles(v)));
                return new Steps(losses, moments);
            }
        }
    }
}
