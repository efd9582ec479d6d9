package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.offload.CpuAdamW;
import dev.strata.offload.OffloadedAdamW;
import dev.strata.runtime.Backend;
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
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Offload on the GPU, where copies run on their own streams and only events order them: AdamW's state in pinned
 * memory and in files (part of it kept on the device, or none), half of it updated by the CPU, trains as AdamW on
 * the device does, bit for bit, and hands its moments to a checkpoint from where they live; recomputed blocks'
 * inputs kept on the host change no bit.
 */
@Tag("gpu")
class CudaOffloadTest {
    static final String UNAVAILABLE = CudaBackend.unavailableReason();
    static final AdamW.Settings ADAM = new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, false);

    /**
     * Each tier, half the subgroups on the GPU, the CPU's half updated during backward: clipped at 1 (its early
     * updates redone) and unclipped (kept, their weights sent up while backward runs).
     */
    @Test
    void offloadedStateTrainsAsTheDevicesDoes(@TempDir Path nvme) {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CUDA offload test skipped: " + UNAVAILABLE);
        for (double clip : new double[] {1.0, 0}) {
            Steps device = train(model -> new AdamW(model.parameters(), ADAM), false, clip);
            for (String tier : clip == 0 ? new String[] {"cpu"} : new String[] {"cpu", "nvme", "gpu+cpu", "nvme+cufile"}) {
                double gpuStateGb = tier.startsWith("gpu") ? 0.002 : 0; // the GPU tier: the first parameters' state (2 MB: the embedding's and more) stays on the device
                // cpu: the GPU's subgroups updated as the next forward reaches them (update_during_forward = true), the others before it
                // nvme+cufile: the GPU's subgroups between their files and device memory by cuFile, in its compatibility mode where nvidia-fs
                // is not loaded; where cuFile cannot take files at all (no udev in a container), asking for it stops the run before it starts
                var log = new java.io.ByteArrayOutputStream();
                java.util.function.Function<Transformer, Optimizer> make = model -> new OffloadedAdamW(model.parameters(), new OffloadedAdamW.Settings(ADAM,
                        tier.replace("gpu+", "").replace("+cufile", ""), nvme, 0.5, 4, 20_000, 0, gpuStateGb, true, tier.equals("cpu") ? "true" : "cpu",
                        tier.endsWith("cufile") ? "true" : "false"),
                        GradientSync.NONE, new PrintStream(log, true));
                String refused = tier.endsWith("cufile") ? cuFileRefusal(nvme) : null;
                if (refused != null) {
                    var e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> train(make, false, clip));
                    assertTrue(e.getMessage().startsWith("offload.cufile = true, but cuFile cannot move files under "), e.getMessage());
                    System.out.println("offload nvme+cufile: cuFile cannot take files here (" + refused + "), and the run stopped before it started: " + e.getMessage());
                    continue;
                }
                Steps offloaded = train(make, false, clip);
                assertEquals(tier.endsWith("cufile"), log.toString().contains("moments read into and written from device memory by cuFile"), log.toString());
                assertEquals(tier.equals("cpu"), log.toString().contains("both sides' updates after backward run on into the next forward"), log.toString());
                String what = tier + ", clip " + clip;
                // deterministic sums, and the CPU's AdamW rounds as the kernel does (below): the same bits wherever the state lives
                assertArrayEquals(device.losses(), offloaded.losses(), what + ": losses against AdamW on the device");
                assertEquals(device.moments().keySet(), offloaded.moments().keySet(), what);
                for (var e : device.moments().entrySet()) assertArrayEquals(e.getValue(), offloaded.moments().get(e.getKey()), what + ": " + e.getKey());
                System.out.printf("offload %s on the GPU, 8 steps: losses %s (device AdamW %s)%n", what, Arrays.toString(offloaded.losses()), Arrays.toString(device.losses()));
            }
        }
    }

    /** The CPU's AdamW rounds as the kernel does: a subgroup's update is the same bits on either side (moments at an offset, as in a window). */
    @Test
    void cpuAdamWEqualsTheKernelBitForBit() {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CPU-against-kernel AdamW test skipped: " + UNAVAILABLE);
        int n = 100_003, at = 48;
        SplittableRandom rng = new SplittableRandom(11);
        double[] p = rng.doubles(n, -0.05, 0.05).toArray(), g = rng.doubles(n, -0.02, 0.02).toArray(), m = new double[at + n], v = new double[at + n];
        for (int i = 0; i < n; i++) {
            m[at + i] = rng.nextDouble(-1e-3, 1e-3);
            v[at + i] = rng.nextDouble(1e-9, 1e-5);
        }
        double lr = 3e-4, bc1 = 1 - Math.pow(0.9, 7), bc2Sqrt = Math.sqrt(1 - Math.pow(0.95, 7)), norm = 2.5, maxNorm = 0.7, wd = 0.1;
        try (CudaBackend gpu = CudaBackend.open(0); CpuAdamW cpu = new CpuAdamW(4);
             var dp = gpu.fromDoubles(p, DType.F32, n); var dg = gpu.fromDoubles(g, DType.F32, n); var dm = gpu.fromDoubles(m, DType.F32, at + n);
             var dv = gpu.fromDoubles(v, DType.F32, at + n); var schedule = gpu.fromDoubles(new double[] {lr, bc1, bc2Sqrt}, DType.F64, 3);
             var sumSquares = gpu.fromDoubles(new double[] {norm * norm}, DType.F64, 1)) {
            double[] before = gpu.toDoubles(dp);
            ByteBuffer hp = floats(before, 0), hg = floats(gpu.toDoubles(dg), 0), hm = floats(gpu.toDoubles(dm), at), hv = floats(gpu.toDoubles(dv), at);
            gpu.adamw(List.of(new Backend.AdamWSlot(dp, dg, dm, dv, at, wd, null)),
                    new Backend.AdamWSettings(0.9, 0.95, 1e-8, maxNorm), schedule, sumSquares);
            double scale = CpuAdamW.clipScale(DType.F32, maxNorm, Math.sqrt(norm * norm));
            cpu.update(DType.F32, List.of(new CpuAdamW.Part(hp, hg, hm, hv, n,
                    new CpuAdamW.Step(0.9, 0.95, 1e-8, lr, bc1, bc2Sqrt, wd, scale))));
            double[] kp = gpu.toDoubles(dp), km = gpu.toDoubles(dm), kv = gpu.toDoubles(dv);
            int differ = 0;
            for (int i = 0; i < n; i++)
                if (hp.getFloat(4 * i) != (float) kp[i] || hm.getFloat(4 * i) != (float) km[at + i] || hv.getFloat(4 * i) != (float) kv[at + i]) differ++;
            assertEquals(0, differ, "elements whose weight or moments differ between the CPU's AdamW and the kernel, of " + n);
            assertTrue(kp[5] != before[5] && km[at + 5] != m[at + 5], "the update moved the weights and moments");
        }
    }

    /**
     * Why cuFile cannot write a tensor into a file under dir and read it back on this machine, or null where it can
     * (the library loads, and the file system's volume is one it can register: it reads udev's properties).
     */
    static String cuFileRefusal(Path dir) {
        try (CudaBackend gpu = CudaBackend.open(0); Backend.FileIo io = gpu.fileIo(true); var t = gpu.fromDoubles(new double[] {1, 2}, DType.F32, 2)) {
            Path probe = java.nio.file.Files.write(dir.resolve("cufile.probe"), new byte[4096]);
            io.write(List.of(new Backend.FileIo.Part(t, 2, 0)), probe);
            io.read(probe, List.of(new Backend.FileIo.Part(t, 2, 0)));
            java.nio.file.Files.delete(probe);
            return null;
        } catch (Exception e) {
            return e.getMessage();
        }
    }

    /** cuFile (its compatibility mode where nvidia-fs is not loaded) writes device memory into a file at an offset and reads it back. */
    @Test
    void cuFileMovesTensorsBetweenFilesAndDeviceMemory(@TempDir Path dir) throws Exception {
        assumeTrue(UNAVAILABLE == null, "no GPU here, cuFile test skipped: " + UNAVAILABLE);
        String refused = cuFileRefusal(dir);
        assumeTrue(refused == null, "cuFile cannot take files on this machine, test skipped: " + refused);
        int n = 100_003;
        double[] values = new SplittableRandom(3).doubles(n, -1, 1).toArray();
        Path file = dir.resolve("state");
        try (CudaBackend gpu = CudaBackend.open(0); Backend.FileIo io = gpu.fileIo(true); var t = gpu.fromDoubles(values, DType.F32, n);
             var back = gpu.zeros(DType.F32, n)) {
            System.out.println("cuFile: " + io.describe());
            java.nio.file.Files.write(file, new byte[8192 + 4 * n]);
            io.write(List.of(new Backend.FileIo.Part(t, n, 8192)), file);
            ByteBuffer bytes = ByteBuffer.wrap(java.nio.file.Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
            assertEquals((float) values[n - 1], bytes.getFloat(8192 + 4 * (n - 1)), "the last element, in the file at its offset");
            io.read(file, List.of(new Backend.FileIo.Part(back, n, 8192)));
            assertArrayEquals(gpu.toDoubles(t), gpu.toDoubles(back), "read back into device memory");
        }
    }

    /** values[from..] as little-endian floats. */
    private static ByteBuffer floats(double[] values, int from) {
        var b = ByteBuffer.allocateDirect(4 * (values.length - from)).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = from; i < values.length; i++) b.putFloat(4 * (i - from), (float) values[i]);
        return b;
    }

    @Test
    void recomputedInputsOnTheHostChangeNoLoss() {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CUDA activation offload test skipped: " + UNAVAILABLE);
        Steps device = train(model -> new AdamW(model.parameters(), ADAM), false, 1.0), host = train(model -> new AdamW(model.parameters(), ADAM), true, 1.0);
        assertArrayEquals(device.losses(), host.losses(), "losses with the recomputed blocks' inputs on the host");
        assertTrue(host.losses()[7] < host.losses()[0], "it learns: " + Arrays.toString(host.losses()));
    }

    record Steps(double[] losses, Map<String, double[]> moments) {}

    /**
     * Eight f32 steps of a small Llama on one repeated batch, every block recomputed, the sums in a fixed order
     * (training.deterministic), clipped at clip; the moments after, from where they live.
     */
    static Steps train(java.util.function.Function<Transformer, Optimizer> optimizer, boolean inputsOnHost, double clip) {
        try (CudaBackend gpu = CudaBackend.open(0); ActivationOffload acts = new ActivationOffload(gpu)) {
            gpu.deterministic(true);
            ModelConfig cfg = ModelConfig.llama(1000, 128, 2, 2, 1, 352, 96);
            Transformer model = new Transformer(cfg, gpu, DType.F32);
            Initializer.initialize(model, 7);
            model.checkpointActivations(ActivationCheckpointing.FULL);
            if (inputsOnHost) model.offloadActivations(acts);
            int b = 3, t = 64;
            int[] tokens = new SplittableRandom(3).ints((long) b * t + 1, 0, cfg.vocabSize()).toArray();
            int[][] inputs = {Arrays.copyOfRange(tokens, 0, b * t)}, targets = {Arrays.copyOfRange(tokens, 1, b * t + 1)};
            double[] losses = new double[8];
            try (Optimizer opt = optimizer.apply(model); TrainStep step = new TrainStep(model, opt, b, t, 1, clip, false)) {
                for (int s = 0; s < losses.length; s++) losses[s] = step.run(inputs, targets, 3e-3).loss();
                Map<String, double[]> moments = new java.util.TreeMap<>();
                if (opt.stateOnHost()) for (Map.Entry<String, HostTensor> e : opt.hostState().entrySet()) moments.put(e.getKey(), e.getValue().toDoubles());
                opt.state().forEach((k, v) -> moments.put(k, gpu.toDoubles(v))); // all of AdamW's; offloaded, the GPU tier's
                return new Steps(losses, moments);
            }
        }
    }
}
