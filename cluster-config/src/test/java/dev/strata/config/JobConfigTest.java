package dev.strata.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class JobConfigTest {

    @Test
    void defaultsComeFromReferenceConf() {
        JobConfig job = JobConfig.parse("", "empty.conf");
        assertEquals("cpu", job.backend());
        assertEquals(1e-3, job.training().lr());
        assertEquals("gpt2", job.model().family());
        assertNull(job.model().tieEmbeddings());
    }

    @Test
    void misspelledKeyIsNamedWithItsLineAndTheClosestKnownKey(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("job.conf");
        Files.writeString(file, "training {\n  steps = 10\n  lerning_rate = 0.1\n}\n");
        ConfigError e = assertThrows(ConfigError.class, () -> JobConfig.load(file));
        assertTrue(e.getMessage().contains(file + ":3"), e.getMessage());
        assertTrue(e.getMessage().contains("unknown key 'training.lerning_rate'"), e.getMessage());
        assertTrue(e.getMessage().contains("did you mean"), e.getMessage());
    }

    @Test
    void unknownSectionIsRejected() {
        ConfigError e = assertThrows(ConfigError.class, () -> JobConfig.parse("optimiser.lr = 1", "x.conf"));
        assertTrue(e.getMessage().contains("unknown key 'optimiser.lr'"), e.getMessage());
    }

    @Test
    void wrongTypesAndRangesNameTheKey() {
        ConfigError type = assertThrows(ConfigError.class, () -> JobConfig.parse("training.steps = many", "x.conf"));
        assertTrue(type.getMessage().contains("training.steps"), type.getMessage());
        ConfigError range = assertThrows(ConfigError.class, () -> JobConfig.parse("training.batch_size = 0", "x.conf"));
        assertTrue(range.getMessage().contains("training.batch_size must be a positive integer"), range.getMessage());
        ConfigError choice = assertThrows(ConfigError.class, () -> JobConfig.parse("backend = tpu", "x.conf"));
        assertTrue(choice.getMessage().contains("backend = \"tpu\" is not one of cpu, cuda, auto"), choice.getMessage());
        ConfigError heads = assertThrows(ConfigError.class, () -> JobConfig.parse("model { dim = 100, n_heads = 3 }", "x.conf"));
        assertTrue(heads.getMessage().contains("model.dim (100) must be a multiple of model.n_heads (3)"), heads.getMessage());
        ConfigError lr = assertThrows(ConfigError.class, () -> JobConfig.parse("training { lr = 1e-3, min_lr = 1e-2 }", "x.conf"));
        assertTrue(lr.getMessage().contains("training.min_lr"), lr.getMessage());
        ConfigError rank = assertThrows(ConfigError.class, () -> JobConfig.parse("lora.rank = -2", "x.conf"));
        assertTrue(rank.getMessage().contains("x.conf: lora.rank must be 0 or a positive integer"), rank.getMessage());
        ConfigError targets = assertThrows(ConfigError.class, () -> JobConfig.parse("lora { rank = 8, targets = [] }", "x.conf"));
        assertTrue(targets.getMessage().contains("lora.targets must name at least one layer"), targets.getMessage());
        ConfigError alpha = assertThrows(ConfigError.class, () -> JobConfig.parse("lora { rank = 8, alpha = 0 }", "x.conf"));
        assertTrue(alpha.getMessage().contains("lora.alpha must be positive"), alpha.getMessage());
    }

    @Test
    void hadamardBlockIsAPowerOfTwoOrFull() {
        assertEquals(0, JobConfig.parse("precision.hadamard_block = full", "x.conf").precision().hadamardBlock());
        assertEquals(256, JobConfig.parse("precision.hadamard_block = 256", "x.conf").precision().hadamardBlock());
        for (String bad : new String[] {"100", "huge", "-64"}) {
            ConfigError e = assertThrows(ConfigError.class, () -> JobConfig.parse("precision.hadamard_block = " + bad, "x.conf"));
            assertTrue(e.getMessage().contains("x.conf: precision.hadamard_block must be a power of two") && e.getMessage().contains(bad), e.getMessage());
        }
    }

    @Test
    void loraIsOffUnlessARankIsGiven() {
        assertFalse(JobConfig.parse("", "x.conf").lora().enabled());
        LoraSpec lora = JobConfig.parse("lora { rank = 8, targets = [\"attention.wq\", \"attention.wv\"] }", "x.conf").lora();
        assertTrue(lora.enabled());
        assertEquals(16.0, lora.alpha());
        assertEquals(java.util.List.of("attention.wq", "attention.wv"), lora.targets());
    }

    @Test
    void presetFillsTheModelAndExplicitKeysWin() {
        JobConfig job = JobConfig.parse("model { preset = llama-1b, n_layers = 2 }", "x.conf");
        assertEquals("llama", job.model().family());
        assertEquals(2048, job.model().dim());
        assertEquals(8, job.model().nKvHeads());
        assertEquals(2, job.model().nLayers());
        ConfigError e = assertThrows(ConfigError.class, () -> JobConfig.parse("model.preset = gpt5", "x.conf"));
        assertTrue(e.getMessage().contains("model.preset = \"gpt5\" is unknown"), e.getMessage());
    }

    @Test
    void overridesKeepTheRestOfTheJob() {
        JobConfig job = JobConfig.parse("training.steps = 7\nrun_dir = a", "x.conf").withOverrides("run_dir = b");
        assertEquals("b", job.runDir());
        assertEquals(7, job.training().steps());
        assertTrue(job.toJson().contains("\"steps\":7"), job.toJson());
    }
}
