package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.config.JobConfig;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.Activations;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.Parameter;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The plan counts what a CPU run allocates, byte for byte: weights, gradients and AdamW's moments against the
 * model's tensors, and one micro-batch's activations against what its forward files in its context plus the logits.
 * (On the GPU, `strata plan` against the allocator's peak in `strata bench train`: docs/running.md.)
 */
class MemoryPlanTest {
    @ParameterizedTest
    @CsvSource({"gpt2, none", "llama, none", "llama, full"})
    void thePlanCountsWhatTheCpuAllocates(String family, String checkpointing, @TempDir Path dir) {
        JobConfig job = TrainerTest.job(dir, dir, family, 1).withOverrides("dtype = f64\ntraining { batch_size = 2, seq_len = 16, grad_accum_steps = 1, "
                + "activation_checkpointing = " + checkpointing + " }");
        ModelConfig cfg = Models.config(job.model());
        var plan = MemoryPlan.estimate(job, cfg);
        CpuBackend cpu = CpuBackend.INSTANCE;
        Transformer model = Models.model(job, cfg, cpu, DType.F64);
        model.checkpointActivations(dev.strata.trainer.model.ActivationCheckpointing.parse(checkpointing));
        Initializer.initialize(model, 1);
        long weights = 0;
        for (Parameter p : model.parameters().values()) weights += p.value().numel() * 8;
        assertEquals(weights, plan.weights(), "weights");
        assertEquals(weights, plan.gradients(), "gradients");
        try (AdamW opt = new AdamW(model.parameters(), new AdamW.Settings(0.9, 0.95, 1e-8, 0, false))) {
            long moments = opt.state().values().stream().mapToLong(t -> t.numel() * 8).sum();
            assertEquals(moments, plan.optimizer(), "optimizer state");
        }
        int b = 2, t = 16;
        Activations context = new Activations();
        try (Activations.Scope bound = context.bind();
             Tensor ids = cpu.fromInts(new SplittableRandom(1).ints(b * t, 0, cfg.vocabSize()).toArray(), b, t);
             Tensor logits = model.forward(ids, b, t)) {
            long measured = context.bytes() + logits.numel() * 8;
            long recomputed = checkpointing.equals("none") ? 0 : plan.activations() - measured; // one block's recomputation at a time
            System.out.printf("%s, checkpointing %s: activations planned %,d bytes, filed %,d (+ %,d recomputed)%n", family, checkpointing,
                    plan.activations(), measured, recomputed);
            assertEquals(plan.activations() - recomputed, measured, "activations of one micro-batch");
            assertTrue(recomputed >= 0);
            model.discardSaved();
        }
        assertTrue(context.isEmpty());
    }

    @org.junit.jupiter.api.Test
    void withOffloadTheMomentsLeaveTheDeviceForTheTiers(@TempDir Path dir) {
        JobConfig base = TrainerTest.job(dir, dir, "llama", 1).withOverrides("dtype = f64\ntraining { batch_size = 2, seq_len = 16 }");
        ModelConfig cfg = Models.config(base.model());
        long moments = MemoryPlan.estimate(base, cfg).optimizer(), sub = 4000 * 8;
        var cpu = MemoryPlan.estimate(base.withOverrides("offload { optimizer = cpu, subgroup_mparams = 0.004 }"), cfg);
        assertEquals(3 * 2 * sub, cpu.optimizer(), "the device holds the GPU subgroups in flight only");
        assertEquals(moments + 4 * 2 * sub, cpu.offloaded().ram(), "pinned: every moment, and the CPU side's staging");
        assertEquals(0, cpu.offloaded().disk());
        assertEquals(moments, cpu.offloaded().hostWeights(), "where RAM has room: a weight and a gradient an element, as many bytes as the moments");
        var nvme = MemoryPlan.estimate(base.withOverrides("offload { optimizer = nvme, nvme_dir = \"" + dir + "\", subgroup_mparams = 0.004 }"), cfg);
        assertEquals(moments, nvme.offloaded().disk(), "nvme without pin_memory_gb: every moment in files");
        assertEquals((4 + 5) * 2 * sub, nvme.offloaded().ram(), "pinned: the staging only");
        // the GPU tier keeps half the moments on the device: only the other half is offloaded, its subgroups as before
        var half = MemoryPlan.estimate(base.withOverrides("offload { optimizer = cpu, subgroup_mparams = 0.004, gpu_state_gb = " + moments / 2e9 + " }"), cfg);
        long kept = half.optimizer() - 3 * 2 * sub;
        assertTrue(kept > moments / 2 - 16 && kept <= moments / 2, "the GPU tier: half the moments, to an element: " + kept);
        assertEquals(moments - kept + 4 * 2 * sub, half.offloaded().ram(), "pinned: the rest and the staging");
        var all = MemoryPlan.estimate(base.withOverrides("offload { optimizer = cpu, gpu_state_gb = 1 }"), cfg);
        assertEquals(moments, all.optimizer(), "state that fits the GPU tier stays there whole");
        assertEquals(0, all.offloaded().ram());
        // auto: the GPU tier takes what the share of the GPU leaves, so the plan with it fills that share (to an element)
        JobConfig offloaded = base.withOverrides("offload { optimizer = cpu, subgroup_mparams = 0.004 }");
        long gpu = (long) ((MemoryPlan.deviceBytes(offloaded, cfg) + moments / 3) / MemoryPlan.GPU_SHARE);
        double auto = MemoryPlan.gpuStateLeft(MemoryPlan.deviceBytes(offloaded, cfg), gpu);
        long filled = MemoryPlan.deviceBytes(offloaded.withOverrides("offload.gpu_state_gb = " + auto), cfg);
        assertTrue(filled <= MemoryPlan.GPU_SHARE * gpu && filled > MemoryPlan.GPU_SHARE * gpu - 32, filled + " of " + MemoryPlan.GPU_SHARE * gpu);
        assertTrue(MemoryPlan.report(offloaded.withOverrides("offload.gpu_state_gb = auto"), 0, gpu / (double) (1L << 30))
                .contains(String.format(java.util.Locale.ROOT, "leaves %.1f GB beside the above; the state that fits there stays", auto)));
        JobConfig full = base.withOverrides("training.activation_checkpointing = full");
        var onDevice = MemoryPlan.estimate(full, cfg);
        var inputsOnHost = MemoryPlan.estimate(full.withOverrides("offload.activations = true"), cfg);
        long inputs = (long) cfg.nLayers() * 2 * 16 * cfg.dim() * 8;
        assertEquals(inputs, onDevice.activations() - inputsOnHost.activations(), "offload.activations: every block's input leaves the device");
        assertEquals(inputs, inputsOnHost.hostActivations(), "and waits on the host");
        String report = MemoryPlan.report(base.withOverrides("offload { optimizer = nvme, nvme_dir = \"" + dir + "\" }"), 0, 0);
        assertTrue(report.contains("pinned host memory") && report.contains("nvme files") && report.contains(dir.toString()), report);
        assertTrue(report.contains("more pinned where RAM has room: the CPU side's weights and gradients"), report);
        assertTrue(!report.contains("updates during backward"), report);
        var tierCpu = MemoryPlan.estimate(base.withOverrides("offload.optimizer = cpu"), cfg).offloaded();
        assertEquals(3 * tierCpu.hostWeights() / 2, tierCpu.earlySpares(), "a spare weight and two moments beside a weight and a gradient");
        String early = MemoryPlan.report(base.withOverrides("offload.optimizer = cpu"), 0, 0);
        assertTrue(early.contains(String.format(java.util.Locale.ROOT, "and up to %.2f GiB beside them for the CPU's updates during backward",
                tierCpu.earlySpares() / (double) (1L << 30))), early);
        String after = MemoryPlan.report(base.withOverrides("offload { optimizer = cpu, update_during_backward = false }"), 0, 0);
        assertTrue(!after.contains("updates during backward"), after);
    }
}
