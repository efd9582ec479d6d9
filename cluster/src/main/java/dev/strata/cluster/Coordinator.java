package dev.strata.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.strata.cluster.Protocol.*;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * The cluster's scheduler (one, as a cluster singleton): the nodes its agents registered, the job queue, and each
 * job's attempts. A job waits until the free slots hold its ranks; a rank that fails or a node that is lost stops the
 * attempt everywhere, and the job starts again from its latest checkpoint — on the same layout when the slots are
 * there, after cluster.wait_for_replacement on the nodes left with dp reduced (the global batch kept) — up to
 * max_restarts times.
 */
public final class Coordinator extends AbstractBehavior<ToCoordinator> {
    /**
     * check: a job's text and source to the one-line reason it cannot run, or null; firstPort: where the rendezvous
     * ports of attempts are taken from (a range of 1000; 0: any free ones here, for a one-node cluster); recoverWithin: how long a restarted coordinator waits for
     * the agents to report a running job's ranks before it counts the attempt as failed; store: where jobs are kept.
     */
    public record Settings(String tokenSha256, Duration waitForReplacement, int maxRestarts, int firstPort, Duration recoverWithin, JobStore store,
                           BiFunction<String, String, String> check) {}

    private record Tick() implements ToCoordinator {}

    private record Node(ActorRef<ToAgent> agent, NodeInfo info) {}

    private static final ObjectMapper JSON = new ObjectMapper();
    private final Settings settings;
    private final Map<String, Node> nodes = new LinkedHashMap<>();
    private final Map<String, ClusterJob> jobs = new LinkedHashMap<>();
    private int nextJob = 1, nextPort;

    public static Behavior<ToCoordinator> create(Settings settings) {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(new Tick(), Duration.ofMillis(500));
            return new Coordinator(ctx, settings);
        }));
    }

    /** Starts with the jobs the store holds: those whose ranks ran are recovering until the agents report them. */
    private Coordinator(ActorContext<ToCoordinator> ctx, Settings settings) {
        super(ctx);
        this.settings = settings;
        long now = System.currentTimeMillis();
        for (ClusterJob j : settings.store().jobs()) {
            jobs.put(j.id, j);
            if (!j.curve.isEmpty()) { // the last step recorded, as its progress rows say (the record is saved on changes of state only)
                j.step = j.curve.lastKey();
                j.loss = j.curve.lastEntry().getValue()[0];
                j.tokensPerSecond = j.curve.lastEntry().getValue()[1];
            }
            nextJob = Math.max(nextJob, Integer.parseInt(j.id.substring(j.id.indexOf('-') + 1)) + 1);
            for (int port : j.ports) nextPort = Math.max(nextPort, port - settings.firstPort() + 1);
            if (!j.live) continue;
            j.rankStates = new String[j.nodes.length];
            java.util.Arrays.fill(j.rankStates, "unknown");
            j.recoveringSince = now;
            j.recordedStep = j.step;
            j.waitingFor = "the coordinator restarted: its nodes to report the ranks of attempt " + j.attempt;
        }
        if (!jobs.isEmpty()) Log.info("coordinator: %d job(s) recorded, %d of them with ranks that ran: finding them again", jobs.size(),
                jobs.values().stream().filter(j -> j.live).count());
    }

    @Override public Receive<ToCoordinator> createReceive() {
        return newReceiveBuilder()
                .onMessage(WorkerUp.class, this::workerUp)
                .onMessage(Submit.class, this::submit)
                .onMessage(ListJobs.class, m -> reply(m.replyTo(), new JobList(jobs.values().stream().map(ClusterJob::view).toArray(JobView[]::new))))
                .onMessage(GetJob.class, m -> reply(m.replyTo(), jobs.containsKey(m.id()) ? jobs.get(m.id()).view() : null))
                .onMessage(Cancel.class, this::cancel)
                .onMessage(ListNodes.class, m -> reply(m.replyTo(), nodeList()))
                .onMessage(RankExited.class, this::rankExited)
                .onMessage(Progress.class, this::progress)
                .onMessage(GetLog.class, this::getLog)
                .onMessage(GetCurve.class, m -> reply(m.replyTo(), curve(jobs.get(m.id()))))
                .onMessage(Tick.class, m -> tick())
                .onSignal(Terminated.class, this::agentGone)
                .build();
    }

    private <T> Behavior<ToCoordinator> reply(ActorRef<T> to, T message) {
        to.tell(message);
        return this;
    }

    private Behavior<ToCoordinator> workerUp(WorkerUp m) {
        if (!settings.tokenSha256().equals(m.tokenSha256())) {
            Log.info("refused node %s at %s: wrong cluster token", m.node().name(), m.node().host());
            return this;
        }
        Node known = nodes.get(m.node().name());
        if (known == null || !known.agent().equals(m.agent())) {
            nodes.put(m.node().name(), new Node(m.agent(), m.node()));
            getContext().watch(m.agent());
            settings.store().node(m.node().name(), m.agent().path().address().toString());
            Log.info("node %s joined: %s slots, %s GPUs, %s cores", m.node().name(), m.node().slots(), m.node().gpus(), m.node().cores());
        }
        for (AttemptState a : m.attempts()) attemptState(m.node().name(), m.agent(), a);
        return schedule();
    }

    /**
     * What an agent says of an attempt's ranks: their liveness; a rank that failed fails the attempt, one that ended
     * well counts as finished (its exit message may have gone to a coordinator that is gone); ranks of an attempt that
     * is over are stopped; a recovering job runs on once every rank is accounted for.
     */
    private void attemptState(String node, ActorRef<ToAgent> agent, AttemptState a) {
        ClusterJob j = jobs.get(a.jobId());
        // What rank 0 passed on while no coordinator listened, asked of its node's reports in the first seconds after the
        // job was found again, ended by then or not: the records replace themselves, so asking twice costs nothing.
        if (j != null && a.attempt() == j.attempt && System.currentTimeMillis() < j.resendUntil && java.util.Arrays.stream(a.ranks()).anyMatch(r -> r == 0))
            agent.tell(new ResendProgress(j.id, j.attempt, j.recordedStep));
        if (j == null || !j.live || a.attempt() != j.attempt) {
            if (java.util.Arrays.stream(a.exitCodes()).anyMatch(c -> c == -1)) agent.tell(new StopRanks(a.jobId(), a.attempt()));
            return;
        }
        boolean changed = false; // the agents say the same every 2 s: the store hears only of a change
        for (int i = 0; i < a.ranks().length; i++) {
            int rank = a.ranks()[i], code = a.exitCodes()[i];
            if (rank >= j.rankStates.length) continue;
            j.rankStates[rank] = code == -1 ? "running" : "exited " + code;
            if (code > 0) {
                failAttempt(j, "rank " + rank + " exited with code " + code + " on node " + node);
                return;
            }
            if (code == 0) changed |= j.finished.add(rank);
        }
        if (j.recoveringSince > 0 && j.unheard().isEmpty()) {
            j.recoveringSince = 0;
            j.waitingFor = "";
            j.resendUntil = System.currentTimeMillis() + 10_000;
            Log.info("%s: found attempt %s again, every rank running or done", j.id, j.attempt);
        }
        if (j.recoveringSince == 0) changed |= finishedAll(j);
        if (changed) settings.store().save(j);
    }

    /** Whether every rank has finished well, which makes the job succeeded now. */
    private boolean finishedAll(ClusterJob j) {
        if (j.finished.size() < j.ranks() || !j.live) return false;
        j.live = false;
        j.state = "succeeded";
        Log.info("%s succeeded", j.id);
        return true;
    }

    private Behavior<ToCoordinator> submit(Submit m) {
        String error = settings.check().apply(m.job(), m.source());
        if (error != null) return reply(m.replyTo(), new Submitted(null, error));
        try {
            JsonNode tree = JSON.readTree(m.job()), p = tree.path("parallel");
            ClusterJob job = new ClusterJob(String.format("job-%04d", nextJob++), m.job(), m.source(), m.waitTimeoutMs(), System.currentTimeMillis());
            job.dp = p.path("dp").asInt(1);
            job.pp = p.path("pp").asInt(1);
            job.tp = p.path("tp").asInt(1);
            job.steps = tree.path("training").path("steps").asLong();
            jobs.put(job.id, job);
            settings.store().save(job);
            m.replyTo().tell(new Submitted(job.id, null));
        } catch (Exception e) {
            m.replyTo().tell(new Submitted(null, m.source() + ": not a job's settings (" + e.getMessage() + ")"));
        }
        return schedule();
    }

    private Map<String, Integer> freeSlots() {
        Map<String, Integer> free = new LinkedHashMap<>();
        nodes.forEach((name, n) -> free.put(name, n.info().slots()));
        for (ClusterJob j : jobs.values()) if (j.live) for (String n : j.nodes) free.computeIfPresent(n, (k, v) -> v - 1);
        return free;
    }

    /** Recovering jobs whose ranks were not all reported in time have failed; then what can start, starts. */
    private Behavior<ToCoordinator> tick() {
        long now = System.currentTimeMillis();
        for (ClusterJob j : jobs.values()) {
            if (!j.live || j.recoveringSince == 0 || now - j.recoveringSince < settings.recoverWithin().toMillis()) continue;
            j.recoveringSince = 0;
            failAttempt(j, "the coordinator restarted and no node reported ranks " + j.unheard() + " within " + settings.recoverWithin().toSeconds() + " s");
        }
        return schedule();
    }

    /** Starts what can start, in submission order; says what the others wait for. */
    private Behavior<ToCoordinator> schedule() {
        long now = System.currentTimeMillis();
        for (ClusterJob j : jobs.values()) {
            if (!j.state.equals("queued") && !j.state.equals("restarting")) continue;
            Map<String, Integer> free = freeSlots();
            String[] placed = RankPlacement.place(j.ranks(), j.tp, free);
            if (placed == null && j.state.equals("restarting") && now - j.lostAt > settings.waitForReplacement().toMillis()) placed = fewerReplicas(j, free);
            if (placed == null) {
                String waiting = j.ranks() + " ranks (tensor-parallel groups of " + j.tp + " on one node); the cluster has " + RankPlacement.describe(free);
                boolean changed = !waiting.equals(j.waitingFor);
                j.waitingFor = waiting;
                if (changed) settings.store().save(j);
                if (j.attempt < 0 && j.waitTimeoutMs > 0 && now - j.submittedAt > j.waitTimeoutMs) {
                    j.state = "failed";
                    j.reason = "waited " + j.waitTimeoutMs / 1000 + " s for " + j.waitingFor;
                    settings.store().save(j);
                }
                continue;
            }
            start(j, placed);
        }
        return this;
    }

    /** The job on the nodes left: the most replicas below its dp that fit and divide its global batch; null if none. */
    private String[] fewerReplicas(ClusterJob j, Map<String, Integer> free) {
        try {
            JsonNode job = JSON.readTree(j.json);
            long rows = job.path("training").path("batch_size").asLong() * j.dp;
            for (int dp = j.dp - 1; dp >= 1; dp--) {
                if (rows % dp != 0) continue;
                String[] placed = RankPlacement.place(dp * j.pp * j.tp, j.tp, free);
                if (placed == null) continue;
                ((ObjectNode) job.path("parallel")).put("dp", dp);
                ((ObjectNode) job.path("training")).put("batch_size", rows / dp);
                Log.info("%s: no replacement within %d s; resuming on %d data-parallel replicas instead of %d", j.id, settings.waitForReplacement().toSeconds(), dp, j.dp);
                j.reason += "; resumed with dp " + dp + " instead of " + j.dp;
                j.json = JSON.writeValueAsString(job);
                j.dp = dp;
                return placed;
            }
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
        return null;
    }

    private void start(ClusterJob j, String[] placed) {
        int groups = (j.tp > 1 ? j.dp * j.pp : 0) + (j.pp > 1 ? j.dp * j.tp : 0) + j.pp * j.tp; // as MeshComms.groups makes them
        int[] ports = settings.firstPort() == 0 ? freeLoopbackPorts(groups) : new int[groups];
        if (settings.firstPort() > 0) for (int i = 0; i < groups; i++) ports[i] = settings.firstPort() + nextPort++ % 1000;
        j.startAttempt(placed, ports);
        String[] hosts = new String[placed.length];
        for (int r = 0; r < placed.length; r++) hosts[r] = nodes.get(placed[r]).info().host();
        Map<String, List<Integer>> byNode = new LinkedHashMap<>();
        for (int r = 0; r < placed.length; r++) byNode.computeIfAbsent(placed[r], k -> new ArrayList<>()).add(r);
        Log.info("%s attempt %s: %s ranks on %s", j.id, j.attempt, placed.length, byNode);
        settings.store().save(j);
        byNode.forEach((node, ranks) -> nodes.get(node).agent().tell(new StartRanks(j.id, j.attempt, j.json, j.source,
                ranks.stream().mapToInt(Integer::intValue).toArray(), hosts, ports, j.attempt > 0)));
    }

    /** Ports free here now, all different: for a one-node cluster (firstPort 0), whose ranks run on this host. */
    private static int[] freeLoopbackPorts(int n) {
        List<java.net.ServerSocket> held = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) {
                java.net.ServerSocket s = new java.net.ServerSocket();
                held.add(s);
                s.setReuseAddress(true);
                s.bind(new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), 0));
            }
            return held.stream().mapToInt(java.net.ServerSocket::getLocalPort).toArray();
        } catch (java.io.IOException e) {
            throw new IllegalStateException("no free port on the loopback interface: " + e.getMessage(), e);
        } finally {
            for (java.net.ServerSocket s : held) {
                try {
                    s.close();
                } catch (java.io.IOException ignored) {
                    // closing a probe socket
                }
            }
        }
    }

    private Behavior<ToCoordinator> rankExited(RankExited m) {
        ClusterJob j = jobs.get(m.jobId());
        if (j == null || m.attempt() != j.attempt || !j.live) return this;
        if (m.rank() < j.rankStates.length) j.rankStates[m.rank()] = "exited " + m.exitCode();
        if (m.exitCode() != 0) return failAttempt(j, "rank " + m.rank() + " exited with code " + m.exitCode() + " on node " + m.node());
        j.finished.add(m.rank());
        if (j.recoveringSince == 0) finishedAll(j);
        settings.store().save(j);
        return schedule();
    }

    /** Stops the attempt on every node; the job restarts from its latest checkpoint if it may. */
    private Behavior<ToCoordinator> failAttempt(ClusterJob j, String why) {
        j.live = false;
        j.recoveringSince = 0;
        stopEverywhere(j);
        if (j.restarts < settings.maxRestarts()) {
            j.restarts++;
            j.state = "restarting";
            j.reason = why;
            j.lostAt = System.currentTimeMillis();
            Log.info("%s attempt %s failed (%s); restart %s of %s from its latest checkpoint", j.id, j.attempt, why, j.restarts, settings.maxRestarts());
        } else {
            j.state = "failed";
            j.reason = why + (settings.maxRestarts() > 0 ? "; no restarts left (cluster.max_restarts = " + settings.maxRestarts() + ")" : "");
        }
        settings.store().save(j);
        return schedule();
    }

    private void stopEverywhere(ClusterJob j) {
        for (String n : new HashSet<>(List.of(j.nodes))) {
            Node node = nodes.get(n);
            if (node != null) node.agent().tell(new StopRanks(j.id, j.attempt));
        }
    }

    private Behavior<ToCoordinator> agentGone(Terminated t) {
        String lost = null;
        for (var e : nodes.entrySet()) if (e.getValue().agent().equals(t.getRef())) lost = e.getKey();
        if (lost == null) return this;
        nodes.remove(lost);
        settings.store().node(lost, null);
        Log.info("node %s lost", lost);
        for (ClusterJob j : jobs.values()) if (j.live && List.of(j.nodes).contains(lost)) failAttempt(j, "node " + lost + " lost");
        return schedule();
    }

    /** Rank 0's step, also after the attempt ended: a restarted coordinator may hear of steps only once their job is over. */
    private Behavior<ToCoordinator> progress(Progress m) {
        ClusterJob j = jobs.get(m.jobId());
        if (j == null || m.attempt() != j.attempt) return this;
        j.step = m.step();
        j.loss = m.loss();
        j.tokensPerSecond = m.tokensPerSecond();
        j.mfu = m.mfu();
        j.etaSeconds = m.etaSeconds();
        j.curve.tailMap(m.step(), true).clear(); // a restart repeats the steps after its checkpoint
        if (j.curve.size() < 100_000) j.curve.put(m.step(), new double[] {m.loss(), m.tokensPerSecond()});
        if (j.live && j.state.equals("starting")) j.state = "running";
        settings.store().progress(j.id, m.step(), m.loss(), m.tokensPerSecond()); // the job's own record gets its step back from these rows
        return this;
    }

    private Behavior<ToCoordinator> cancel(Cancel m) {
        ClusterJob j = jobs.get(m.id());
        if (j == null) return reply(m.replyTo(), null);
        if (j.live) stopEverywhere(j);
        if (j.live || j.state.equals("queued") || j.state.equals("restarting")) {
            j.live = false;
            j.recoveringSince = 0;
            j.state = "cancelled";
            j.reason = "cancelled by a user";
            settings.store().save(j);
        }
        return reply(m.replyTo(), j.view());
    }

    private Behavior<ToCoordinator> getLog(GetLog m) {
        ClusterJob j = jobs.get(m.jobId());
        Node node = j == null || j.nodes.length == 0 ? null : nodes.get(j.nodes[0]);
        if (node == null) return reply(m.replyTo(), new LogChunk("", m.offset(), j == null || !j.live));
        node.agent().tell(new ReadLog(j.id, j.attempt, 0, m.offset(), m.replyTo()));
        return this;
    }

    private static Curve curve(ClusterJob j) {
        if (j == null) return null;
        long[] steps = j.curve.keySet().stream().mapToLong(Long::longValue).toArray();
        return new Curve(steps, j.curve.values().stream().mapToDouble(v -> v[0]).toArray(), j.curve.values().stream().mapToDouble(v -> v[1]).toArray());
    }

    private NodeList nodeList() {
        Map<String, Integer> free = freeSlots();
        return new NodeList(nodes.values().stream().map(Node::info).toArray(NodeInfo[]::new),
                nodes.keySet().stream().mapToInt(n -> nodes.get(n).info().slots() - free.get(n)).toArray());
    }
}
