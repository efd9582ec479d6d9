package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.config.ConfigError;
import dev.strata.config.JobConfig;
import dev.strata.runtime.HostTensor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Optimizer state offloaded to host memory and to files, updated by the CPU and the "device" (the CPU backend) in
 * turn: in F64, 10 steps give the weights, moments and losses of AdamW on the device bit for bit, on every split
 * (nothing, half, all on the device) and both tiers, with part of the state kept on the device (the GPU tier) or
 * not, with the CPU side's weights kept on the host or streamed,
 * alone and under ZeRO-1 (each rank offloads its own shard); an offloaded run stopped and resumed equals one that
 * never stopped.
 */
class OffloadTrainingTest {
    @TempDir static Path data;

    @BeforeAll
    static void writeData() throws Exception { TrainerTest.writeData(data); }

    static JobConfig job(Path runDir, String offload, int dp, int zero) {
        return TrainerTest.job(runDir, data, "llama", 10).withOverrides("""
                dtype = f64
                parallel { dp = %d, zero = %d, launcher = threads, bucket_mb = 0.02 }
                eval.every = 0
                offload { %s, subgroup_mparams = 0.004 }
                """.formatted(dp, zero, offload));
    }

    static Map<String, HostTensor> checkpoint(Path runDir, boolean optimizer) throws Exception {
        var ckpt = Checkpointer.load(new LocalStorage(), Checkpointer.ofRun(new LocalStorage(), runDir.toString(), 1).latest().orElseThrow());
        return optimizer ? ckpt.optimizer() : ckpt.model();
    }

    static void assertBitIdentical(Path expected, Path actual, String what) throws Exception {
        assertEquals(TrainerTest.losses(expected), TrainerTest.losses(actual), what + ": losses");
        for (boolean optimizer : new boolean[] {false, true}) {
            Map<String, HostTensor> a = checkpoint(expected, optimizer), b = checkpoint(actual, optimizer);
            assertEquals(a.keySet(), b.keySet(), what);
            for (var e : a.entrySet()) assertArrayEquals(e.getValue().toDoubles(), b.get(e.getKey()).toDoubles(), what + ": " + e.getKey());
        }
    }

    @Test
    void everySplitAndTierEqualsAdamWOnTheDevice(@TempDir Path runs) throws Exception {
        new Trainer(job(runs.resolve("device"), "optimizer = none", 1, 0), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        // nvme with 1 MB of pinned memory: after its staging, a few subgroups' moments stay in RAM, the rest go to files;
        // cufile = true: the device's subgroups go between their files and its memory straight (cuFile on a GPU)
        Map<String, String> tiers = Map.of("cpu", "optimizer = cpu", "nvme", "optimizer = nvme", "ram+nvme", "optimizer = nvme, pin_memory_gb = 0.001",
                "nvme+cufile", "optimizer = nvme, cufile = true", "ram+nvme+cufile", "optimizer = nvme, pin_memory_gb = 0.001, cufile = true");
        for (String tier : List.of("cpu", "nvme", "ram+nvme", "nvme+cufile", "ram+nvme+cufile"))
            for (String split : List.of("0", "0.5", "1")) {
                Path dir = runs.resolve(tier + "-" + split);
                var out = new java.io.ByteArrayOutputStream();
                new Trainer(job(dir, tiers.get(tier) + ", nvme_dir = \"" + runs.resolve("nvme") + "\", gpu_fraction = " + split, 1, 0),
                        new java.io.PrintStream(out, true)).run(RunDirectory.Mode.FRESH, 0);
                assertTrue(out.toString().contains("subgroups"), out.toString());
                if (tier.startsWith("ram+nvme")) assertTrue(out.toString().contains("in pinned host memory (0.0 GB) and files under"), out.toString());
                assertEquals(tier.endsWith("cufile"), out.toString().contains("the GPU's subgroups' moments read and written through a host buffer"), out.toString());
                // tier cpu keeps the CPU side's weights and gradients in RAM (gradients sent down during backward) and both sides' updates
                // run on into the next forward; nvme streams them, reads its files in turn, and says so
                if (!split.equals("1")) {
                    assertTrue(out.toString().contains(tier.equals("cpu") ? "weights and gradients kept in pinned RAM" : "streamed through 4 staging blocks"), out.toString());
                    assertTrue(out.toString().contains(!tier.equals("cpu") ? "the update after backward ends before the next forward (the nvme tier reads the moments in turn)"
                            : split.equals("0") ? "what the CPU updates after backward runs on into the next forward"
                            : "both sides' updates after backward run on into the next forward"), out.toString());
                }
                assertBitIdentical(runs.resolve("device"), dir, tier + " tier, gpu_fraction " + split);
            }
        // update_during_forward = cpu: only the CPU's subgroups are updated as the next forward reaches them, the GPU's before it
        var late = new java.io.ByteArrayOutputStream();
        new Trainer(job(runs.resolve("cpu-into-forward"), "optimizer = cpu, gpu_fraction = 0.5, update_during_forward = cpu", 1, 0), new java.io.PrintStream(late, true))
                .run(RunDirectory.Mode.FRESH, 0);
        assertTrue(late.toString().contains("what the CPU updates after backward runs on into the next forward"), late.toString());
        assertBitIdentical(runs.resolve("device"), runs.resolve("cpu-into-forward"), "cpu tier, the CPU's update into the next forward");
        // the GPU tier keeps the first parameters' state on the device (100 KB: a few of them), the rest is offloaded
        for (String tier : List.of("cpu", "nvme")) {
            Path dir = runs.resolve("gpu-tier-" + tier);
            var out = new java.io.ByteArrayOutputStream();
            new Trainer(job(dir, "optimizer = " + tier + ", nvme_dir = \"" + runs.resolve("nvme") + "\", gpu_fraction = 0.5, gpu_state_gb = 0.0001", 1, 0),
                    new java.io.PrintStream(out, true)).run(RunDirectory.Mode.FRESH, 0);
            assertTrue(out.toString().contains("parameters kept on the GPU (0.0 GB; offload.gpu_state_gb allows 0.0001)") && out.toString().contains("subgroups"), out.toString());
            assertBitIdentical(runs.resolve("device"), dir, "the GPU tier and the " + tier + " tier");
        }
        // a GPU tier that holds all of the state offloads nothing: AdamW on the device runs
        var whole = new java.io.ByteArrayOutputStream();
        new Trainer(job(runs.resolve("gpu-tier-whole"), "optimizer = cpu, gpu_state_gb = 1", 1, 0), new java.io.PrintStream(whole, true)).run(RunDirectory.Mode.FRESH, 0);
        assertTrue(whole.toString().contains("offload: all of AdamW's state fits in the GPU tier (1.0 GB): nothing is offloaded")
                && !whole.toString().contains("subgroups"), whole.toString());
        assertBitIdentical(runs.resolve("device"), runs.resolve("gpu-tier-whole"), "the GPU tier holding all of the state");
        var auto = new java.io.ByteArrayOutputStream();
        new Trainer(job(runs.resolve("gpu-tier-auto"), "optimizer = cpu, gpu_fraction = 0.5, gpu_state_gb = auto", 1, 0), new java.io.PrintStream(auto, true))
                .run(RunDirectory.Mode.FRESH, 0);
        assertTrue(auto.toString().contains("gpu_state_gb = auto keeps nothing on the CPU backend"), auto.toString());
        try (var left = Files.list(runs.resolve("nvme"))) {
            assertEquals(List.of(), left.toList(), "the nvme tier removes its files when the run ends");
        }
        var out = new java.io.ByteArrayOutputStream();
        new Trainer(job(runs.resolve("auto"), "optimizer = cpu", 1, 0), new java.io.PrintStream(out, true)).run(RunDirectory.Mode.FRESH, 0);
        assertTrue(out.toString().contains("offload split: host link"), "the measured split says why: " + out);
        assertTrue(out.toString().contains("offload update: "), "and the run ends with where the host's update time went: " + out);
        assertBitIdentical(runs.resolve("device"), runs.resolve("auto"), "cpu tier, measured split");
        // unclipped, the CPU's updates during backward (the default) are kept, and the split is chosen again from the time backward left them
        new Trainer(job(runs.resolve("device-unclipped"), "optimizer = none", 1, 0).withOverrides("training.grad_clip = 0"), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        var again = new java.io.ByteArrayOutputStream();
        new Trainer(job(runs.resolve("auto-unclipped"), "optimizer = cpu", 1, 0).withOverrides("training.grad_clip = 0"), new java.io.PrintStream(again, true))
                .run(RunDirectory.Mode.FRESH, 0);
        String resplit = again.toString().lines().filter(l -> l.startsWith("offload split: backward left the CPU")).findFirst().orElse("");
        assertTrue(!resplit.isEmpty() && again.toString().contains("the CPU updates each of its subgroups as soon as"), again.toString());
        assertTrue(again.toString().matches("(?s).*CPU subgroups updated during backward: [1-9]\\d* kept, 0 redone.*"), again.toString());
        System.out.println(resplit);
        assertBitIdentical(runs.resolve("device-unclipped"), runs.resolve("auto-unclipped"), "cpu tier, measured split chosen again, unclipped");
    }

    /** LoRA's adapters are all it offloads; FP8 layers' codes are refreshed from the weights the CPU sent back. */
    @Test
    void offloadComposesWithLoraAndFp8(@TempDir Path runs) throws Exception {
        new Trainer(job(runs.resolve("base"), "optimizer = none", 1, 0), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        String lora = "model.init_from = \"" + runs.resolve("base") + "\"\nlora { rank = 4, alpha = 8, targets = [\"attention\", \"feed_forward\", \"output\"] }\n"
                + "training.lr = 3e-2";
        String fp8 = "precision { linear = fp8, rotation = all, hadamard_block = 16 }";
        for (String setting : List.of(lora, fp8)) {
            String name = setting == lora ? "lora" : "fp8";
            new Trainer(job(runs.resolve(name + "-device"), "optimizer = none", 1, 0).withOverrides(setting), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
            new Trainer(job(runs.resolve(name + "-cpu"), "optimizer = cpu, gpu_fraction = 0.5", 1, 0).withOverrides(setting), TrainerTest.quiet())
                    .run(RunDirectory.Mode.FRESH, 0);
            assertBitIdentical(runs.resolve(name + "-device"), runs.resolve(name + "-cpu"), name + ", cpu tier, half on the device");
        }
    }

    @Test
    void eachZeroRankOffloadsItsShard(@TempDir Path runs) throws Exception {
        new Trainer(job(runs.resolve("device"), "optimizer = none", 2, 1).withOverrides("training.batch_size = 2"), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        var out = new java.io.ByteArrayOutputStream();
        new Trainer(job(runs.resolve("cpu"), "optimizer = cpu, gpu_fraction = 0.5", 2, 1).withOverrides("training.batch_size = 2"), new java.io.PrintStream(out, true))
                .run(RunDirectory.Mode.FRESH, 0);
        assertBitIdentical(runs.resolve("device"), runs.resolve("cpu"), "ZeRO-1 over 2 ranks, cpu tier, half on the device");
        assertTrue(out.toString().contains("the update after backward ends before the next forward (the ranks exchange parameters or gradients after the update)"), out.toString());
    }

    /** The checkpoints are written from the pinned buffers and files the moments live in, and read back into them. */
    @Test
    void anOffloadedRunResumesAsIfItNeverStopped(@TempDir Path runs) throws Exception {
        for (String tier : List.of("nvme", "nvme, cufile = true", "cpu", "cpu, gpu_state_gb = 0.0001")) {
            String offload = "optimizer = " + tier + ", nvme_dir = \"" + runs.resolve("nvme") + "\", gpu_fraction = 0.5";
            String name = tier.replaceAll("\\W+", "-");
            Path straight = runs.resolve(name + "-straight"), stopped = runs.resolve(name + "-stopped");
            new Trainer(job(straight, offload, 1, 0), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
            new Trainer(job(stopped, offload, 1, 0), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 5);
            new Trainer(job(stopped, offload, 1, 0), TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0);
            assertBitIdentical(straight, stopped, tier + " stopped at step 5 and resumed");
        }
    }

    @Test
    void badOffloadSettingsAreOneLine(@TempDir Path runs) throws Exception {
        var pin = assertThrows(IllegalArgumentException.class, () -> new Trainer(job(runs.resolve("pin"), "optimizer = nvme, nvme_dir = \"" + runs.resolve("nvme")
                + "\", pin_memory_gb = 0.000001", 1, 0), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0));
        assertTrue(pin.getMessage().startsWith("offload.pin_memory_gb = 1.0E-6 is less than the"), pin.getMessage());
        assertTrue(!Files.exists(runs.resolve("pin")), "nothing written for a run that could not start");
        var nvme = assertThrows(ConfigError.class, () -> job(runs, "optimizer = nvme", 1, 0));
        assertTrue(nvme.getMessage().contains("offload.optimizer = nvme needs offload.nvme_dir"), nvme.getMessage());
        var split = assertThrows(ConfigError.class, () -> job(runs, "optimizer = cpu, gpu_fraction = 1.5", 1, 0));
        assertTrue(split.getMessage().contains("offload.gpu_fraction must be auto or a number from 0 to 1, got 1.5"), split.getMessage());
        var gpuState = assertThrows(ConfigError.class, () -> job(runs, "optimizer = cpu, gpu_state_gb = -1", 1, 0));
        assertTrue(gpuState.getMessage().contains("offload.gpu_state_gb must be auto, 0 (all the state offloaded) or more GB, got -1"), gpuState.getMessage());
        var acts = assertThrows(ConfigError.class, () -> job(runs, "optimizer = none, activations = true", 1, 0));
        assertTrue(acts.getMessage().contains("offload.activations = true moves the inputs of recomputed blocks to host memory; set training.activation_checkpointing"),
                acts.getMessage());
        var cufile = assertThrows(ConfigError.class, () -> job(runs, "optimizer = nvme, nvme_dir = x, cufile = gds", 1, 0));
        assertTrue(cufile.getMessage().contains("offload.cufile = \"gds\" is not one of auto, true, false"), cufile.getMessage());
        var late = assertThrows(ConfigError.class, () -> job(runs, "optimizer = cpu, update_during_forward = gpu", 1, 0));
        assertTrue(late.getMessage().contains("offload.update_during_forward = \"gpu\" is not one of true, cpu, false"), late.getMessage());
        var tier = assertThrows(ConfigError.class, () -> job(runs, "optimizer = disk", 1, 0));
        assertTrue(tier.getMessage().contains("offload.optimizer = \"disk\" is not one of none, cpu, nvme"), tier.getMessage());
    }
}
