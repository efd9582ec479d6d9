package dev.strata.trainer.train;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.config.JobConfig;
import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.stream.Stream;

/**
 * A run's directory: run.json (what run this is), checkpoints/ and metrics.jsonl. Guards against mixing runs: a
 * directory that already holds a run is used only with {@code --resume} (same model) or {@code --overwrite}.
 */
public final class RunDirectory implements AutoCloseable {
    public static final String RUN_JSON = "run.json", METRICS = "metrics.jsonl";
    private static final ObjectMapper JSON = new ObjectMapper();

    public enum Mode { FRESH, RESUME, OVERWRITE }

    private final Path dir;
    private final BufferedWriter metrics;

    private RunDirectory(Path dir) throws IOException {
        this.dir = dir;
        this.metrics = Files.newBufferedWriter(dir.resolve(METRICS), StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                StandardOpenOption.APPEND);
    }

    /** Opens (after {@link #check}) the job's run directory: clears it under OVERWRITE, records the run in run.json. */
    public static RunDirectory open(JobConfig job, Mode mode) throws IOException {
        check(job, mode);
        Path dir = Path.of(job.runDir()), runJson = dir.resolve(RUN_JSON);
        if (mode == Mode.OVERWRITE && Files.isDirectory(dir) && !isEmpty(dir)) new LocalStorage().delete(dir.toString());
        Files.createDirectories(dir);
        if (!Files.exists(runJson)) {
            Map<String, Object> run = new LinkedHashMap<>();
            run.put("created", Instant.now().toString());
            run.put("job_file", job.source());
            run.put("config", job.toMap());
            JSON.writerWithDefaultPrettyPrinter().writeValue(runJson.toFile(), run);
        }
        return new RunDirectory(dir);
    }

    /** Refuses what {@link #open} would refuse, writing nothing, so a caller can fail before it builds anything. */
    public static void check(JobConfig job, Mode mode) throws IOException {
        Path dir = Path.of(job.runDir());
        boolean occupied = Files.isDirectory(dir) && !isEmpty(dir);
        Path runJson = dir.resolve(RUN_JSON);
        if (occupied && mode == Mode.FRESH) {
            throw new IllegalArgumentException("run directory " + dir + " already holds "
                    + (Files.exists(runJson) ? "a run" : "other files") + "; pass --resume to continue it or --overwrite to replace it");
        } else if (occupied && mode == Mode.RESUME) {
            if (!Files.exists(runJson))
                throw new IllegalArgumentException("run directory " + dir + " holds files but no " + RUN_JSON + ": it is not a Strata run");
            Map<String, Object> previous = JSON.readValue(runJson.toFile(), new TypeReference<LinkedHashMap<String, Object>>() {});
            Object prevModel = previous.get("config") instanceof Map<?, ?> c ? c.get("model") : null;
            Object prevDtype = previous.get("config") instanceof Map<?, ?> c ? c.get("dtype") : null;
            if (!Objects.equals(prevModel, job.toMap().get("model")) || !Objects.equals(prevDtype, job.toMap().get("dtype")))
                throw new IllegalArgumentException("run directory " + dir + " holds a run of a different model or dtype ("
                        + runJson + " has model " + prevModel + ", dtype " + prevDtype + "); cannot resume it with " + job.source());
        }
    }

    private static boolean isEmpty(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.findAny().isEmpty();
        }
    }

    public Path dir() { return dir; }

    /** Appends one JSON record to metrics.jsonl. */
    public void log(Map<String, Object> record) throws IOException {
        metrics.write(JSON.writeValueAsString(record));
        metrics.newLine();
        metrics.flush();
    }

    @Override public void close() throws IOException { metrics.close(); }
}
