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

    /** An agent joins; tokenSha256 proves it holds the cluster's token. */
    public record WorkerUp(ActorRef<ToAgent> agent, NodeInfo node, String tokenSha256) implements ToCoordinator {}

    /** A job file's text (HOCON or JSON), the name it came under, and how long it may wait for ranks (0: forever). */
    public record Submit(String job, String source, long waitTimeoutMs, ActorRef<Submitted> replyTo) implements ToCoordinator {}

    /** The new job's id, or why it was refused (one line). */
    public record Submitted(String id, String error) implements ClusterMessage {}

    public record ListJobs(ActorRef<JobList> replyTo) implements ToCoordinator {}

    public record JobList(JobView[] jobs) implements ClusterMessage {}

    /** A job as users see it. nodes[r]: the node rank r runs on in the current attempt. */
    public record JobView(String id, String name, String state, String reason, int ranks, String layout, String[] nodes, long step, long steps,
                          double loss, double tokensPerSecond, int restarts, String waitingFor, long submittedAtMs) implements ClusterMessage {}

    /** replyTo gets the job, or null for an unknown id. */
    public record GetJob(String id, ActorRef<JobView> replyTo) implements ToCoordinator {}

    public record Cancel(String id, ActorRef<JobView> replyTo) implements ToCoordinator {}

    public record ListNodes(ActorRef<NodeList> replyTo) implements ToCoordinator {}

    /** A node and the ranks it runs now. */
    public record NodeList(NodeInfo[] nodes, int[] busySlots) implements ClusterMessage {}

    /** A rank process of a job's attempt ended with this exit code. */
    public record RankExited(String jobId, int attempt, int rank, int exitCode, String node) implements ToCoordinator {}

    /** Rank 0's latest metrics line of a job's attempt. */
    public record Progress(String jobId, int attempt, long step, double loss, double tokensPerSecond) implements ToCoordinator {}

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

    public record ReadLog(String jobId, int attempt, int rank, long offset, ActorRef<LogChunk> replyTo) implements ToAgent {}
}
