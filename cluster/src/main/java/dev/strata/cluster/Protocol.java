package dev.strata.cluster;

import org.apache.pekko.actor.typed.ActorRef;

/** What the coordinator, the worker agents and the REST API say to each other. Arrays, not lists: Kryo's registry is exact. */
public final class Protocol {
    private Protocol() {}

    /** What the coordinator is told. */
    public interface ToCoordinator extends ClusterMessage {}

    /** What a worker agent is told. */
    public interface ToAgent extends ClusterMessage {}

    /** A host as its agent reports it: where it runs, how many ranks it takes (its GPUs, or CPU slots), its cores and memory. */
    public record NodeInfo(String name, String host, int slots, int gpus, int cores, long memoryBytes) implements ClusterMessage {}

    /**
     * An agent joins, and says so again every few seconds with the attempts it runs or ran, so a restarted coordinator
     * finds its running jobs and each rank's liveness is known; tokenSha256 proves it holds the cluster's token.
     */
    public record WorkerUp(ActorRef<ToAgent> agent, NodeInfo node, String tokenSha256, AttemptState[] attempts) implements ToCoordinator {}

    /** The ranks of a job's attempt on one node; exitCodes[i]: ranks[i]'s exit code, or -1 while it runs. */
    public record AttemptState(String jobId, int attempt, int[] ranks, int[] exitCodes) implements ClusterMessage {}

    /** A job file's text (HOCON or JSON), the name it came under, and how long it may wait for ranks (0: forever). */
    public record Submit(String job, String source, long waitTimeoutMs, ActorRef<Submitted> replyTo) implements ToCoordinator {}

    /** The new job's id, or why it was refused (one line). */
    public record Submitted(String id, String error) implements ClusterMessage {}

    public record ListJobs(ActorRef<JobList> replyTo) implements ToCoordinator {}

    public record JobList(JobView[] jobs) implements ClusterMessage {}

    /** A job as users see it. nodes[r]: the node rank r runs on in the current attempt. */
    /**
     * A job as users see it. nodes[r]: the node rank r runs on in the latest attempt; rankStates[r]: starting, running,
     * exited N or unknown (its node not heard from); mfu NaN where the peak is unknown (CPU); etaSeconds -1 before a step.
     */
    public record JobView(String id, String name, String state, String reason, int ranks, String layout, String[] nodes, String[] rankStates,
                          long step, long steps, double loss, double tokensPerSecond, double mfu, double etaSeconds, int restarts, String waitingFor,
                          long submittedAtMs) implements ClusterMessage {}

    /** replyTo gets the job, or null for an unknown id. */
    public record GetJob(String id, ActorRef<JobView> replyTo) implements ToCoordinator {}

    public record Cancel(String id, ActorRef<JobView> replyTo) implements ToCoordinator {}

    public record ListNodes(ActorRef<NodeList> replyTo) implements ToCoordinator {}

    /** A node and the ranks it runs now. */
    public record NodeList(NodeInfo[] nodes, int[] busySlots) implements ClusterMessage {}

    /** A rank process of a job's attempt ended with this exit code. */
    public record RankExited(String jobId, int attempt, int rank, int exitCode, String node) implements ToCoordinator {}

    /** Rank 0's metrics line of a step of a job's attempt (mfu NaN where unknown). */
    public record Progress(String jobId, int attempt, long step, double loss, double tokensPerSecond, double mfu, double etaSeconds) implements ToCoordinator {}

    /** Rank 0's log of the job's latest attempt from byte offset on. */
    public record GetLog(String jobId, long offset, ActorRef<LogChunk> replyTo) implements ToCoordinator {}

    public record LogChunk(String text, long nextOffset, boolean finished) implements ClusterMessage {}

    /** A job's progress so far: rank 0's reports, one a step (every attempt's, the steps a restart repeats replaced). */
    public record GetCurve(String id, ActorRef<Curve> replyTo) implements ToCoordinator {}

    public record Curve(long[] steps, double[] loss, double[] tokensPerSecond) implements ClusterMessage {}

    /** A refused request, for replies that carry a reason. */
    public record Rejected(String reason) implements ClusterMessage {}

    /**
     * Start these ranks of attempt attempt: job is the job's JSON at this attempt's layout; hosts[r] and ports say
     * where each group's first rank listens; resume: continue from the run's latest checkpoint.
     */
    public record StartRanks(String jobId, int attempt, String job, String source, int[] ranks, String[] hosts, int[] ports, boolean resume) implements ToAgent {}

    /** Stop every rank of the job's attempt on this node (its other ranks failed, or the job was cancelled). */
    public record StopRanks(String jobId, int attempt) implements ToAgent {}

    /** Pass on rank 0's metrics again from after this step (a restarted coordinator missed what was sent while it was away). */
    public record ResendProgress(String jobId, int attempt, long afterStep) implements ToAgent {}

    public record ReadLog(String jobId, int attempt, int rank, long offset, ActorRef<LogChunk> replyTo) implements ToAgent {}
}
