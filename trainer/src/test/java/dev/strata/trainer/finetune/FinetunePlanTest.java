package dev.strata.trainer.finetune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.config.JobConfig;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.train.MemoryPlan;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The plan fits what the user left open to the GPU by the memory model, fastest first, and keeps what they chose. */
class FinetunePlanTest {
    // Llama-3.2-1B's layout
    static final ModelConfig LLAMA_1B = new ModelConfig(ModelConfig.Family.LLAMA, 32000, 2048, 16, 32, 8, 64, 8192, 4096, 1e-5, 500000, false, false, false);
    static final JobConfig FULL = JobConfig.parse("dtype = bf16\ntraining.seq_len = 2048", "test");

    static String choice(JobConfig j) {
        var t = j.training();
        return t.batchSize() + "x" + t.gradAccumSteps() + " " + t.activationCheckpointing() + " " + j.offload().optimizer();
    }

    @Test
    void aSmallerGpuGetsASlowerLayoutThatFitsIt() {
        long big = 140L << 30, small = 24L << 30;
        JobConfig roomy = Finetune.fitToDevice(FULL, LLAMA_1B, Set.of(), new CudaBackend.Properties("big", big));
        JobConfig tight = Finetune.fitToDevice(FULL, LLAMA_1B, Set.of(), new CudaBackend.Properties("small", small));
        for (JobConfig j : new JobConfig[] {roomy, tight})
            assertEquals(Finetune.GLOBAL_BATCH, j.training().batchSize() * j.training().gradAccumSteps(), "16 sequences a step: " + choice(j));
        assertTrue(MemoryPlan.deviceBytes(roomy, LLAMA_1B) <= big * MemoryPlan.GPU_SHARE && MemoryPlan.deviceBytes(tight, LLAMA_1B) <= small * MemoryPlan.GPU_SHARE);
        assertTrue(!choice(roomy).equals(choice(tight)), "24 GiB cannot take what 140 GiB takes: " + choice(roomy));
        assertTrue(MemoryPlan.deviceBytes(Finetune.fitToDevice(FULL, LLAMA_1B, Set.of(), new CudaBackend.Properties("big", big)), LLAMA_1B)
                > small * MemoryPlan.GPU_SHARE, "the roomy choice would not have fit the small GPU");
        System.out.printf("finetune plan, Llama-1B full, 16 x 2048 tokens a step: 140 GiB -> %s (%.1f GiB), 24 GiB -> %s (%.1f GiB)%n", choice(roomy),
                MemoryPlan.deviceBytes(roomy, LLAMA_1B) / (double) (1L << 30), choice(tight), MemoryPlan.deviceBytes(tight, LLAMA_1B) / (double) (1L << 30));
        var e = assertThrows(IllegalArgumentException.class, () -> Finetune.fitToDevice(FULL, LLAMA_1B, Set.of(), new CudaBackend.Properties("tiny", 1L << 30)));
        assertTrue(e.getMessage().contains("does not fit tiny (1.0 GiB)"), e.getMessage());
    }

    @Test
    void whatTheUserChoseStays() {
        JobConfig asked = FULL.withOverrides("training { batch_size = 2, grad_accum_steps = 3, activation_checkpointing = full }");
        JobConfig j = Finetune.fitToDevice(asked, LLAMA_1B, Set.of("training.batch_size", "training.grad_accum_steps", "training.activation_checkpointing"),
                new CudaBackend.Properties("big", 140L << 30));
        assertEquals("2x3 full none", choice(j));
        JobConfig accumOnly = Finetune.fitToDevice(FULL.withOverrides("training.grad_accum_steps = 8"), LLAMA_1B, Set.of("training.grad_accum_steps"),
                new CudaBackend.Properties("big", 140L << 30));
        assertEquals(8, accumOnly.training().gradAccumSteps(), "--accum alone keeps its accumulation: " + choice(accumOnly));
    }
}
