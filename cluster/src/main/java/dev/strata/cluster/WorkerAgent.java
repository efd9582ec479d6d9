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
 * starts the rank processes it is given, each in a free slot of its own (its GPU) — their output in
 * workDir/JOB/attempt-N/rank-R.log unless the launcher says otherwise — tells the coordinator
 * when each exits, stops them when told, and, for a job whose rank 0 runs here, passes on rank 0's metrics.
 */
public final class WorkerAgent extends AbstractBehavior<ToAgent> {
    private record Register() implements ToAgent {}

    private record Report() implements ToAgent {}

    private record Exited(String jobId, int attempt, int rank, int exitCode) implements ToAgent {}

    /** A job's latest attempt here, kept after it ends so the reports still say how its ranks ended. */
    private static final class Attempt {
        final String jobId;
        final int attempt;
        final int[] ranks, slots, exitCodes;
        final List<Process> processes;
        final Path metrics;        // rank 0's metrics.jsonl, null where rank 0 runs elsewhere
        long lastStep, readBytes;  // the last step passed on; the bytes of metrics read so far
        boolean drained;           // ended, and its last records went out
        boolean stopped;           // told to stop: its slots are free for what comes next

        Attempt(String jobId, int attempt, int[] ranks, int[] slots, List<Process> processes, Path metrics) {
            this.jobId = jobId;
            this.attempt = attempt;
            this.ranks = ranks;
            this.slots = slots;
            this.exitCodes = new int[ranks.length];
            java.util.Arrays.fill(exitCodes, -1);
            this.processes = processes;
            this.metrics = metrics;
        }

        boolean running() { return java.util.Arrays.stream(exitCodes).anyMatch(c -> c == -1); }

        void stop() {
            stopped = true;
            processes.forEach(Process::destroyForcibly);
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private final ActorRef<ToCoordinator> coordinator;
    private final NodeInfo node;
    private final String tokenSha256;
    private final RankLauncher launcher;
    private final Path workDir;
    private final Map<String, Attempt> attempts = new HashMap<>(); // by job id

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
                    coordinator.tell(new WorkerUp(getContext().getSelf(), node, tokenSha256, attempts.values().stream()
                            .map(a -> new AttemptState(a.jobId, a.attempt, a.ranks.clone(), a.exitCodes.clone())).toArray(AttemptState[]::new)));
                    return this;
                })
                .onMessage(StartRanks.class, this::start)
                .onMessage(StopRanks.class, this::stop)
                .onMessage(Exited.class, this::exited)
                .onMessage(ResendProgress.class, this::resend)
                .onMessage(ReadLog.class, this::readLog)
                .onMessage(Report.class, m -> report())
                .onSignal(PostStop.class, s -> {
                    attempts.values().forEach(Attempt::stop);
                    for (Attempt a : attempts.values())
                        for (Process p : a.processes) {
                            try {
                                p.waitFor(10, java.util.concurrent.TimeUnit.SECONDS); // none outlives its agent
                            } catch (InterruptedException e) {
                                Thread.currentThread().interrupt();
                            }
                        }
                    return this;
                })
                .build();
    }

    /** Free slots for n ranks, lowest first (the slots of ranks told to stop count as free); null if there are fewer. */
    private int[] freeSlots(int n) {
        boolean[] busy = new boolean[node.slots()];
        for (Attempt a : attempts.values())
            if (a.running() && !a.stopped) for (int s : a.slots) busy[s] = true;
        int[] out = new int[n];
        int k = 0;
        for (int s = 0; s < busy.length && k < n; s++) if (!busy[s]) out[k++] = s;
        return k == n ? out : null;
    }

    private Behavior<ToAgent> start(StartRanks m) {
        Attempt old = attempts.remove(m.jobId());
        if (old != null) old.stop();
        int[] slots = freeSlots(m.ranks().length);
        if (slots == null) {
            for (int rank : m.ranks()) coordinator.tell(new RankExited(m.jobId(), m.attempt(), rank, 127, node.name() + " (no free slot for it)"));
            return this;
        }
        List<Process> processes = new ArrayList<>();
        Path metrics = null;
        try {
            Path dir = Files.createDirectories(workDir.resolve(m.jobId()).resolve("attempt-" + m.attempt()));
            Path jobFile = dir.resolve("job.json");
            Files.writeString(jobFile, m.job());
            for (int i = 0; i < m.ranks().length; i++) {
                int rank = m.ranks()[i];
                Path log = launcher.log(workDir, m.jobId(), m.attempt(), rank);
                Files.createDirectories(log.getParent());
                ProcessBuilder pb = launcher.process(jobFile, m.source(), rank, slots[i], m.hosts(), m.ports(), m.resume())
                        .redirectErrorStream(true).redirectOutput(log.toFile());
                Process p = pb.start();
                processes.add(p);
                p.onExit().thenAccept(done -> getContext().getSelf().tell(new Exited(m.jobId(), m.attempt(), rank, done.exitValue())));
                if (rank == 0) metrics = Path.of(JSON.readTree(m.job()).path("run_dir").asText(), "metrics.jsonl");
            }
            Log.info("%s attempt %s: started ranks %s in slots %s", m.jobId(), m.attempt(), java.util.Arrays.toString(m.ranks()), java.util.Arrays.toString(slots));
        } catch (IOException e) {
            processes.forEach(Process::destroyForcibly);
            for (int rank : m.ranks()) coordinator.tell(new RankExited(m.jobId(), m.attempt(), rank, 127, node.name() + " (cannot start: " + e.getMessage() + ")"));
            return this;
        }
        attempts.put(m.jobId(), new Attempt(m.jobId(), m.attempt(), m.ranks().clone(), slots, processes, metrics));
        return this;
    }

    private Behavior<ToAgent> exited(Exited m) {
        Attempt a = attempts.get(m.jobId());
        if (a != null && a.attempt == m.attempt())
            for (int i = 0; i < a.ranks.length; i++) if (a.ranks[i] == m.rank()) a.exitCodes[i] = m.exitCode();
        coordinator.tell(new RankExited(m.jobId(), m.attempt(), m.rank(), m.exitCode(), node.name()));
        return this;
    }

    private Behavior<ToAgent> stop(StopRanks m) {
        Attempt a = attempts.get(m.jobId());
        if (a != null && a.attempt == m.attempt()) a.stop();
        return this;
    }

    private Behavior<ToAgent> resend(ResendProgress m) {
        Attempt a = attempts.get(m.jobId());
        if (a != null && a.attempt == m.attempt() && a.metrics != null) {
            a.lastStep = m.afterStep();
            a.readBytes = 0;
            a.drained = false;
            Log.info("%s attempt %s: passing on rank 0's metrics again after step %d", m.jobId(), m.attempt(), m.afterStep());
        }
        return this;
    }

    /** Rank 0's metrics records written since the last report (whole lines only), of each job whose rank 0 runs here. */
    private Behavior<ToAgent> report() {
        for (Attempt a : attempts.values()) {
            if (a.metrics == null || a.drained || !Files.exists(a.metrics)) continue;
            boolean ended = !a.running(); // read before the file, so nothing written before the end is missed
            try (RandomAccessFile f = new RandomAccessFile(a.metrics.toFile(), "r")) {
                if (f.length() < a.readBytes) a.readBytes = 0; // a resume cut the file back to its checkpoint
                byte[] bytes = new byte[Math.toIntExact(f.length() - a.readBytes)];
                f.seek(a.readBytes);
                f.readFully(bytes);
                String text = new String(bytes, StandardCharsets.UTF_8);
                int end = text.lastIndexOf('\n') + 1;
                a.readBytes += text.substring(0, end).getBytes(StandardCharsets.UTF_8).length;
                for (String line : text.substring(0, end).split("\n")) {
                    if (line.isBlank()) continue;
                    JsonNode n = JSON.readTree(line);
                    long step = n.path("step").asLong();
                    if (!n.has("loss") || n.has("skipped") || step <= a.lastStep) continue;
                    coordinator.tell(new Progress(a.jobId, a.attempt, step, n.path("loss").asDouble(), n.path("tokens_per_s").asDouble(),
                            n.path("mfu").asDouble(Double.NaN), n.path("eta_s").asDouble(-1)));
                    a.lastStep = step;
                }
                a.drained = ended;
            } catch (IOException e) {
                Log.info("%s: cannot read rank 0's metrics %s: %s", a.jobId, a.metrics, e.getMessage());
            }
        }
        return this;
    }

    private Behavior<ToAgent> readLog(ReadLog m) {
        Path log = launcher.log(workDir, m.jobId(), m.attempt(), m.rank());
        Attempt a = attempts.get(m.jobId());
        boolean finished = a == null || a.attempt != m.attempt() || !a.running();
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
