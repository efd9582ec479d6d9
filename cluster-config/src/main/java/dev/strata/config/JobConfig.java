package dev.strata.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import com.typesafe.config.ConfigRenderOptions;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * A whole job: where it runs and writes, the model, the data, and how to train, evaluate, checkpoint and sample.
 * Job files are HOCON written without the {@code strata} root that reference.conf uses; keys are the same names as
 * in logs and checkpoint manifests.
 */
public record JobConfig(
        String runDir, String backend, String dtype, boolean cudaGraphs, long seed,
        ModelSpec model, PrecisionSpec precision, LoraSpec lora, DataSpec data, TrainingSpec training, EvalSpec eval, CheckpointSpec checkpoint,
        int logEvery, SampleSpec sample, ParallelSpec parallel, OffloadSpec offload, FinetuneSpec finetune, String source, Config user, Config resolved) {

    /** Reads a job file over the defaults; every error names the file and the key. */
    public static JobConfig load(Path file) {
        if (Files.isDirectory(file)) throw new ConfigError(file + " is a directory, not a job file (e.g. examples/gpt-shakespeare.conf)");
        if (!Files.isRegularFile(file)) throw new ConfigError("job file " + file + " does not exist");
        try {
            ConfigParseOptions options = ConfigParseOptions.defaults().setAllowMissing(false).setIncluder(new RequiredIncluder(file));
            return from(ConfigFactory.parseFile(file.toFile(), options), file.toString());
        } catch (ConfigException.Parse | ConfigException.IO e) {
            throw new ConfigError("job file " + file + " cannot be parsed: " + e.getMessage());
        }
    }

    /** A job from HOCON text (tests, CLI overrides); {@code source} names it in errors. */
    public static JobConfig parse(String hocon, String source) {
        try {
            return from(ConfigFactory.parseString(hocon), source);
        } catch (ConfigException.Parse e) {
            throw new ConfigError(source + " cannot be parsed: " + e.getMessage());
        }
    }

    /** A job from settings as {@link #toMap} gives them (a checkpoint manifest's); {@code source} names them in errors. */
    public static JobConfig fromMap(Map<String, Object> settings, String source) {
        if (settings == null) throw new ConfigError(source + " records no job settings");
        return from(ConfigFactory.parseMap(settings, source), source);
    }

    /**
     * This job with some keys replaced, e.g. {@code withOverrides("run_dir = \"x\"")}, laid over the job file as
     * written (so a new model.preset takes effect as if the file had said it).
     */
    public JobConfig withOverrides(String hocon) {
        Config over;
        try {
            over = ConfigFactory.parseString(hocon);
        } catch (ConfigException.Parse e) {
            throw new ConfigError("override '" + hocon.replace('\n', ' ') + "' cannot be parsed: " + e.getMessage().replaceFirst("^String: \\d+: ", ""));
        }
        return from(over.withFallback(user), source);
    }

    static JobConfig from(Config job, String source) {
        // Beside this class, not at the root: Pekko's reference.conf lives there, and a root name would merge them.
        Config reference = ConfigFactory.parseResources(JobConfig.class, "reference.conf");
        Config user = job.atPath("strata");
        KeyCheck.rejectUnknown(user, reference, source);
        // A preset sits between the job's own model keys and the defaults.
        String preset = user.hasPath("strata.model.preset") ? user.getString("strata.model.preset") : "";
        Config withPreset = user;
        if (!preset.isEmpty()) {
            if (!reference.hasPath("strata.presets." + preset))
                throw new ConfigError(source + ": model.preset = \"" + preset + "\" is unknown; known presets: "
                        + String.join(", ", reference.getConfig("strata.presets").root().keySet()));
            withPreset = user.withFallback(reference.getConfig("strata.presets." + preset).atPath("strata.model"));
        }
        Config resolved;
        try {
            resolved = withPreset.withFallback(reference).resolve();
        } catch (ConfigException e) {
            throw new ConfigError(source + ": " + e.getMessage());
        }
        Fields f = new Fields(resolved.getConfig("strata"), source);
        f.require(!f.string("run_dir").contains("://"), "run_dir holds the run's metrics and logs on this host's disk, got " + f.string("run_dir")
                + "; keep it local and put the checkpoints on HDFS with checkpoint.dir = \"hdfs://host:port/path\"");
        f.require(f.string("checkpoint.dir").isEmpty() || !f.string("checkpoint.dir").contains("://") || f.string("checkpoint.dir").startsWith("hdfs://"),
                "checkpoint.dir must be a local directory or an hdfs:// URI, got " + f.string("checkpoint.dir"));
        return new JobConfig(
                f.string("run_dir"), f.oneOf("backend", "cpu", "cuda", "auto"), f.oneOf("dtype", "f32", "f64", "bf16"),
                f.bool("cuda_graphs"), f.integer("seed"), ModelSpec.from(f), PrecisionSpec.from(f), LoraSpec.from(f), new DataSpec(f.string("data.dir")), TrainingSpec.from(f),
                new EvalSpec(f.nonNegative("eval.every"), f.positive("eval.batches")),
                new CheckpointSpec(f.nonNegative("checkpoint.every"), f.positive("checkpoint.keep_last"), f.nonNegative("checkpoint.keep_every"),
                        f.bool("checkpoint.async"), f.string("checkpoint.dir"), f.string("checkpoint.resume_from")),
                f.positive("log.every"), SampleSpec.from(f), ParallelSpec.from(f), OffloadSpec.from(f), FinetuneSpec.from(f), source, job, resolved);
    }

    /** The job settings (preset applied, presets list left out) as JSON, as stored in run.json and manifests. */
    public String toJson() { return settings().root().render(ConfigRenderOptions.concise()); }

    public Map<String, Object> toMap() { return settings().root().unwrapped(); }

    private Config settings() { return resolved.getConfig("strata").withoutPath("presets"); }
}
