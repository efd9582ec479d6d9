package dev.strata.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.strata.cluster.Protocol.*;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * A host's agent: registers with the coordinator (again every few seconds, so a new coordinator learns of it) and
 * talks to it through the singleton's proxy, wherever it runs;
 * starts the rank processes it is given — their output in workDir/JOB/attempt-N/rank-R.log — tells the coordinator
 * when each exits, stops them when told, and, for a job whose rank 0 runs here, passes on rank 0's metrics.
 */
public final class WorkerAgent extends AbstractBehavior<ToAgent> {
    private record Register() implements ToAgent {}

    private record Report() implements ToAgent {}

    private record Running(String jobId, int attempt, List<Process> processes, Path metrics, long[] read) {} // read: {the last step passed on, bytes of metrics read}

    private static final ObjectMapper JSON = new ObjectMapper();
    private final ActorRef<ToCoordinator> coordinator;
    private final NodeInfo node;
    private final String tokenSha256;
    private final RankLauncher launcher;
    private final Path workDir;
    private final Map<String, Running> running = new HashMap<>(); // by job id: its current attempt here

    public static Behavior<ToAgent> create(ActorRef<ToCoordinator> coordinator, NodeInfo node, String tokenSha256, RankLauncher launcher, Path workDir) {
        return Behaviors.<ToAgent>setup(ctx -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(new Register(), Duration.ZERO, Duration.ofSeconds(2));
            timers.startTimerWithFixedDelay(new Report(), Duration.ofSeconds(1));
            return new WorkerAgent(ctx, coordinator, node, tokenSha256, launcher, workDir);
        }));
    }

    private WorkerAgent(ActorContext<ToAgent> ctx, ActorRef<ToCoordinator> coordinator, NodeInfo node, String tokenSha256, RankLauncher launcher, Path workDir) {
        super(ctx);
        this.coordinator = coordinator;
        this.node = node;
        this.tokenSha256 = tokenSha256;
        this.launcher = launcher;
        this.workDir = workDir;
    }

    @Override public Receive<ToAgent> createReceive() {
        return newReceiveBuilder()
                .onMessage(Register.class, m -> {
                    coordinator.tell(new WorkerUp(getContext().getSelf(), node, tokenSha256));
                    return this;
                })
                .onMessage(StartRanks.class, this::start)
                .onMessage(StopRanks.class, this::stop)
                .onMessage(ReadLog.class, this::readLog)
                .onMessage(Report.class, m -> report())
                .onSignal(PostStop.class, s -> {
                    running.values().forEach(r -> r.processes().forEach(Process::destroyForcibly));
                    return this;
                })
                .build();
    }

    private Path attemptDir(String jobId, int attempt) { return workDir.resolve(jobId).resolve("attempt-" + attempt); }

    private Behavior<ToAgent> start(StartRanks m) {
        Running old = running.remove(m.jobId());
        if (old != null) old.processes().forEach(Process::destroyForcibly);
        List<Process> processes = new ArrayList<>();
        Path metrics = null;
        try {
            Path dir = Files.createDirectories(attemptDir(m.jobId(), m.attempt()));
            Path jobFile = dir.resolve("job.json");
            Files.writeString(jobFile, m.job());
            for (int rank : m.ranks()) {
                ProcessBuilder pb = new ProcessBuilder(launcher.command(jobFile, m.source(), rank, m.hosts(), m.ports(), m.resume()))
                        .redirectErrorStream(true).redirectOutput(dir.resolve("rank-" + rank + ".log").toFile());
                Process p = pb.start();
                processes.add(p);
                p.onExit().thenAccept(done -> coordinator.tell(new RankExited(m.jobId(), m.attempt(), rank, done.exitValue(), node.name())));
                if (rank == 0) metrics = Path.of(JSON.readTree(m.job()).path("run_dir").asText(), "metrics.jsonl");
            }
            Log.info("%s attempt %s: started ranks %s", m.jobId(), m.attempt(), java.util.Arrays.toString(m.ranks()));
        } catch (IOException e) {
            processes.forEach(Process::destroyForcibly);
            for (int rank : m.ranks()) coordinator.tell(new RankExited(m.jobId(), m.attempt(), rank, 127, node.name() + " (cannot start: " + e.getMessage() + ")"));
            return this;
        }
        running.put(m.jobId(), new Running(m.jobId(), m.attempt(), processes, metrics, new long[2]));
        return this;
    }

    private Behavior<ToAgent> stop(StopRanks m) {
        Running r = running.get(m.jobId());
        if (r != null && r.attempt() == m.attempt()) {
            r.processes().forEach(Process::destroyForcibly);
            running.remove(m.jobId());
        }
        return this;
    }

    /**
     * Rank 0's metrics records written since the last report (whole lines only), of each job whose rank 0 runs here;
     * finished attempts are forgotten once their last records went out.
     */
    private Behavior<ToAgent> report() {
        for (Running r : running.values()) {
            if (r.metrics() == null || !Files.exists(r.metrics())) continue;
            try (RandomAccessFile f = new RandomAccessFile(r.metrics().toFile(), "r")) {
                if (f.length() < r.read()[1]) r.read()[1] = 0; // a resume cut the file back to its checkpoint
                byte[] bytes = new byte[Math.toIntExact(f.length() - r.read()[1])];
                f.seek(r.read()[1]);
                f.readFully(bytes);
                String text = new String(bytes, StandardCharsets.UTF_8);
                int end = text.lastIndexOf('\n') + 1;
                r.read()[1] += text.substring(0, end).getBytes(StandardCharsets.UTF_8).length;
                for (String line : text.substring(0, end).split("\n")) {
                    if (line.isBlank()) continue;
                    JsonNode n = JSON.readTree(line);
                    long step = n.path("step").asLong();
                    if (!n.has("loss") || n.has("skipped") || step <= r.read()[0]) continue;
                    coordinator.tell(new Progress(r.jobId(), r.attempt(), step, n.path("loss").asDouble(), n.path("tokens_per_s").asDouble()));
                    r.read()[0] = step;
                }
            } catch (IOException e) {
                Log.info("%s: cannot read rank 0's metrics %s: %s", r.jobId(), r.metrics(), e.getMessage());
            }
        }
        running.values().removeIf(r -> r.processes().stream().noneMatch(Process::isAlive)); // after their last records went out
        return this;
    }

    private Behavior<ToAgent> readLog(ReadLog m) {
        Path log = attemptDir(m.jobId(), m.attempt()).resolve("rank-" + m.rank() + ".log");
        Running r = running.get(m.jobId());
        boolean finished = r == null || r.attempt() != m.attempt() || r.processes().stream().noneMatch(Process::isAlive);
        if (!Files.exists(log)) {
            m.replyTo().tell(new LogChunk("", m.offset(), finished));
            return this;
        }
        try (RandomAccessFile f = new RandomAccessFile(log.toFile(), "r")) {
            long from = Math.min(m.offset(), f.length());
            byte[] bytes = new byte[(int) Math.min(1 << 16, f.length() - from)];
            f.seek(from);
            f.readFully(bytes);
            m.replyTo().tell(new LogChunk(new String(bytes, StandardCharsets.UTF_8), from + bytes.length, finished && from + bytes.length == f.length()));
        } catch (IOException e) {
            m.replyTo().tell(new LogChunk("(cannot read " + log + ": " + e.getMessage() + ")\n", m.offset(), true));
        }
        return this;
    }
}
