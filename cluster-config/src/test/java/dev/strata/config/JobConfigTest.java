package dev.strata.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
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

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "training.steps = many                  | training.steps",
            "training.batch_size = 0                | training.batch_size must be a positive integer",
            "backend = tpu                          | backend = \"tpu\" is not one of cpu, cuda, auto",
            "model { dim = 100, n_heads = 3 }       | model.dim (100) must be a multiple of model.n_heads (3)",
            "training { lr = 1e-3, min_lr = 1e-2 }  | training.min_lr",
            "lora.rank = -2                         | x.conf: lora.rank must be 0 or a positive integer",
            "lora { rank = 8, targets = [] }        | lora.targets must name at least one layer",
            "lora { rank = 8, alpha = 0 }           | lora.alpha must be positive"})
    void wrongTypesAndRangesNameTheKey(String job, String message) {
        ConfigError e = assertThrows(ConfigError.class, () -> JobConfig.parse(job, "x.conf"));
        assertTrue(e.getMessage().contains(message), e.getMessage());
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

    /** An override of model.preset takes effect as if the file had said it (it used to lose to the old preset's fields). */
    @Test
    void aPresetSetFromOutsideReplacesTheFilesPreset() {
        JobConfig job = JobConfig.parse("model.preset = gpt2-tiny\nmodel.max_seq_len = 128", "job.conf");
        JobConfig big = job.withOverrides("model.preset = gpt2-124m");
        assertEquals(768, big.model().dim());
        assertEquals(12, big.model().nLayers());
        assertEquals(128, big.model().maxSeqLen(), "the file's own model keys still win over the preset");
        assertEquals("gpt2-124m", ((java.util.Map<?, ?>) big.toMap().get("model")).get("preset"));
    }

    @Test
    void includesResolveBesideTheFileAndAMissingOneIsAnError(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("base.conf"), "training.steps = 17");
        Files.writeString(dir.resolve("job.conf"), "include \"base.conf\"\nrun_dir = \"r\"");
        assertEquals(17, JobConfig.load(dir.resolve("job.conf")).training().steps());
        Files.writeString(dir.resolve("bad.conf"), "include \"nope.conf\"");
        var e = assertThrows(ConfigError.class, () -> JobConfig.load(dir.resolve("bad.conf")));
        assertTrue(e.getMessage().contains("nope.conf") && e.getMessage().contains("does not exist"), e.getMessage());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {"training.steps = 2.7|training.steps", "training.lr = Infinity|training.lr",
            "model.norm_eps = Infinity|model.norm_eps", "model.rope_theta = NaN|model.rope_theta", "model.rope_theta = -1|model.rope_theta"})
    void fractionalCountsAndNonFiniteNumbersAreRefused(String line, String key) {
        var e = assertThrows(ConfigError.class, () -> JobConfig.parse(line, "job.conf"));
        assertTrue(e.getMessage().startsWith("job.conf: " + key), e.getMessage());
    }
}
