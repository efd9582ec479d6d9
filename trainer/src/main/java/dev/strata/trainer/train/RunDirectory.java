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
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.stream.Stream;

/**
 * A run's directory: run.json (what run this is), checkpoints/ and metrics.jsonl. Guards against mixing runs: a
 * directory that already holds a run is used only with {@code --resume} (same model) or {@code --overwrite}, and
 * {@code --overwrite} removes only what a run writes there, never a file of the user's.
 */
public final class RunDirectory implements AutoCloseable {
    public static final String RUN_JSON = "run.json", METRICS = "metrics.jsonl", CHECKPOINTS = "checkpoints";
    /** Each rank's output under parallel.launcher = processes; the launcher replaces it, and it alone does not make a directory a run's. */
    public static final String LOGS = "logs";
    private static final ObjectMapper JSON = new ObjectMapper();

    public enum Mode { FRESH, RESUME, OVERWRITE }

    private final Path dir;
    private final BufferedWriter metrics;

    private RunDirectory(Path dir, BufferedWriter metrics) {
        this.dir = dir;
        this.metrics = metrics;
    }

    private RunDirectory(Path dir) throws IOException {
        this(dir, Files.newBufferedWriter(dir.resolve(METRICS), StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND));
    }

    /** The run directory as a rank other than 0 sees it: it writes nothing there. */
    static RunDirectory notWritten(JobConfig job) { return new RunDirectory(Path.of(job.runDir()), null); }

    /** Opens (after {@link #check}) the job's run directory: clears a run's files under OVERWRITE, records the run in run.json. */
    public static RunDirectory open(JobConfig job, Mode mode) throws IOException {
        check(job, mode);
        Path dir = Path.of(job.runDir()), runJson = dir.resolve(RUN_JSON);
        if (mode == Mode.OVERWRITE) for (Path p : runFiles(dir)) new LocalStorage().delete(p.toString());
        Files.createDirectories(dir);
        if (!Files.exists(runJson)) {
            Map<String, Object> run = new LinkedHashMap<>();
            run.put("created", Instant.now().toString());
            run.put("job_file", job.source());
            run.put("config", job.toMap());
            Path tmp = dir.resolve(RUN_JSON + ".tmp");
            JSON.writerWithDefaultPrettyPrinter().writeValue(tmp.toFile(), run);
            Files.move(tmp, runJson, StandardCopyOption.ATOMIC_MOVE);
        }
        return new RunDirectory(dir);
    }

    /** What a run writes into its directory, and so all that {@code --overwrite} may remove. */
    static List<Path> runFiles(Path dir) throws IOException {
        List<Path> files = new ArrayList<>();
        if (!Files.isDirectory(dir)) return files;
        try (Stream<Path> s = Files.list(dir)) {
            s.filter(p -> isRunFile(p.getFileName().toString())).sorted().forEach(files::add);
        }
        return files;
    }

    private static boolean isRunFile(String name) {
        return name.equals(RUN_JSON) || name.equals(METRICS) || name.equals(CHECKPOINTS) || name.equals(RUN_JSON + ".tmp")
                || name.equals(METRICS + ".tmp") || name.endsWith(".log");
    }

    /** Refuses what {@link #open} would refuse, writing nothing, so a caller can fail before it builds anything. */
    public static void check(JobConfig job, Mode mode) throws IOException {
        if (job.runDir().isBlank())
            throw new IllegalArgumentException(job.source() + ": run_dir is empty; set it to a directory for this run, e.g. run_dir = \"runs/my-run\"");
        Path dir = Path.of(job.runDir());
        if (Files.exists(dir) && !Files.isDirectory(dir))
            throw new IllegalArgumentException(job.source() + ": run_dir = " + dir + " is a file, not a directory");
        if (mode == Mode.OVERWRITE) refuseToClear(job, dir);
        Path runJson = dir.resolve(RUN_JSON);
        boolean hasRun = !runFiles(dir).isEmpty();
        if (mode == Mode.FRESH && Files.isDirectory(dir) && !isEmpty(dir)) {
            throw new IllegalArgumentException("run directory " + dir + " already holds "
                    + (hasRun ? "a run" : "other files") + "; pass --resume to continue it or --overwrite to replace it"
                    + (hasRun ? "" : " (--overwrite removes only a run's files: run.json, metrics.jsonl, checkpoints/, *.log)"));
        } else if (mode == Mode.RESUME && hasRun) {
            if (!Files.exists(runJson))
                throw new IllegalArgumentException("run directory " + dir + " holds files but no " + RUN_JSON + ": it is not a Strata run");
            Map<String, Object> previous = previousConfig(dir);
            Object prevModel = previous.get("model"), prevDtype = previous.get("dtype");
            if (!Objects.equals(prevModel, job.toMap().get("model")) || !Objects.equals(prevDtype, job.toMap().get("dtype")))
                throw new IllegalArgumentException("run directory " + dir + " holds a run of a different model or dtype ("
                        + runJson + " has model " + prevModel + ", dtype " + prevDtype + "); cannot resume it with " + job.source());
        }
    }

    /** The job settings run.json recorded when the run started. */
    static Map<String, Object> previousConfig(Path dir) throws IOException {
        Path runJson = dir.resolve(RUN_JSON);
        Map<String, Object> previous;
        try {
            previous = JSON.readValue(runJson.toFile(), new TypeReference<LinkedHashMap<String, Object>>() {});
        } catch (com.fasterxml.jackson.core.JacksonException e) {
            throw new IllegalArgumentException(runJson + " is not valid JSON (" + e.getOriginalMessage() + "); it records the run's settings");
        }
        if (!(previous.get("config") instanceof Map<?, ?> c))
            throw new IllegalArgumentException(runJson + " has no \"config\" object; it records the run's settings");
        @SuppressWarnings("unchecked") Map<String, Object> config = (Map<String, Object>) c;
        return config;
    }

    /** --overwrite never points at a directory whose loss would hurt: the current, home or root one, or the data's. */
    private static void refuseToClear(JobConfig job, Path dir) {
        Path abs = dir.toAbsolutePath().normalize();
        String why = abs.getParent() == null ? "the root directory"
                : abs.equals(Path.of("").toAbsolutePath().normalize()) ? "the current directory"
                : abs.equals(Path.of(System.getProperty("user.home")).toAbsolutePath().normalize()) ? "the home directory" : null;
        Path data = Path.of(job.data().dir()).toAbsolutePath().normalize();
        if (why == null && data.startsWith(abs)) why = "the directory holding data.dir (" + job.data().dir() + ")";
        if (why != null)
            throw new IllegalArgumentException(job.source() + ": run_dir = \"" + job.runDir() + "\" is " + why
                    + "; --overwrite refuses it: give the run a directory of its own");
    }

    private static boolean isEmpty(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.allMatch(p -> p.getFileName().toString().equals(LOGS) && Files.isDirectory(p));
        }
    }

    public Path dir() { return dir; }

    /** Appends one JSON record to metrics.jsonl. */
    public void log(Map<String, Object> record) throws IOException {
        if (metrics == null) return;
        metrics.write(JSON.writeValueAsString(record));
        metrics.newLine();
        metrics.flush();
    }

    /**
     * Drops the records of steps past {@code step} (a crash after them, then a resume from an earlier checkpoint, would
     * otherwise leave two records of one step), replacing the file by rename. Call before the first {@link #log}.
     */
    public static void truncateMetrics(Path dir, long step) throws IOException {
        Path file = dir.resolve(METRICS);
        if (!Files.exists(file)) return;
        List<String> kept = new ArrayList<>();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (line.isBlank()) continue;
            try {
                var n = JSON.readTree(line);
                if (n.has("step") && n.get("step").asLong() > step) continue;
            } catch (com.fasterxml.jackson.core.JacksonException e) {
                continue; // a line a crash cut short
            }
            kept.add(line);
        }
        Path tmp = dir.resolve(METRICS + ".tmp");
        Files.write(tmp, kept, StandardCharsets.UTF_8);
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    @Override public void close() throws IOException { if (metrics != null) metrics.close(); }
}
