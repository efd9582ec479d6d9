package dev.strata.cluster;

import com.typesafe.config.ConfigFactory;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.ClusterSingleton;
import org.apache.pekko.cluster.typed.ClusterSingletonSettings;
import org.apache.pekko.cluster.typed.Join;
import org.apache.pekko.cluster.typed.SingletonActor;

/**
 * A cluster of one node inside this JVM, on the loopback interface: the scheduler and one agent with a slot per
 * rank. strata train starts, watches and stops its rank processes through it, so one host runs the code a cluster
 * runs; it keeps no job records and, closed, stops every rank it started before it returns.
 */
public final class LocalCluster implements AutoCloseable {
    private static final Duration ASK = Duration.ofSeconds(30);
    private final ActorSystem<Void> system;
    private final ActorRef<Protocol.ToCoordinator> coordinator;

    private LocalCluster(ActorSystem<Void> system, ActorRef<Protocol.ToCoordinator> coordinator) {
        this.system = system;
        this.coordinator = coordinator;
    }

    /** slots ranks (gpus of them on GPUs), started by launcher, their logs where it says; rendezvous ports from firstPort on, or any free ones for 0. */
    public static LocalCluster start(int slots, int gpus, RankLauncher launcher, Path workDir, int firstPort) {
        Log.quiet(); // rank 0's output is the console's; a failure comes back as the job's reason
        String token = UUID.randomUUID().toString();
        var settings = new Coordinator.Settings(ClusterNode.sha256(token), Duration.ZERO, 0, firstPort, Duration.ofSeconds(30), JobStore.none(), (job, source) -> null);
        var node = new Protocol.NodeInfo("local", "127.0.0.1", slots, gpus, Runtime.getRuntime().availableProcessors(), Runtime.getRuntime().maxMemory());
        var config = ConfigFactory.parseString("pekko.coordinated-shutdown.exit-jvm = off") // the JVM is strata train's (or a test's)
                .withFallback(ClusterNode.config("127.0.0.1", 0, List.of(), "coordinator, worker", Duration.ofSeconds(10), null));
        var ready = new java.util.concurrent.CompletableFuture<ActorRef<Protocol.ToCoordinator>>();
        ActorSystem<Void> system = ActorSystem.create(Behaviors.setup(ctx -> {
            ActorRef<Protocol.ToCoordinator> coordinator = ClusterSingleton.get(ctx.getSystem()).init(SingletonActor.of(Coordinator.create(settings), "coordinator")
                    .withSettings(ClusterSingletonSettings.create(ctx.getSystem()).withRole("coordinator")));
            ctx.spawn(WorkerAgent.create(coordinator, node, settings.tokenSha256(), launcher, workDir), "agent");
            ready.complete(coordinator);
            return Behaviors.empty();
        }), ClusterNode.SYSTEM, config);
        Cluster.get(system).manager().tell(new Join(Cluster.get(system).selfMember().address()));
        try {
            return new LocalCluster(system, ready.get(ASK.toSeconds(), TimeUnit.SECONDS));
        } catch (Exception e) {
            system.terminate();
            throw new IllegalStateException("the one-node cluster did not start within " + ASK.toSeconds() + " s", e);
        }
    }

    private <T> T ask(Function<ActorRef<T>, Protocol.ToCoordinator> message) {
        CompletionStage<T> reply = AskPattern.ask(coordinator, message::apply, ASK, system.scheduler());
        try {
            return reply.toCompletableFuture().get(ASK.toSeconds() + 5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while asking the one-node cluster's scheduler");
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
            throw new IllegalStateException("the one-node cluster's scheduler did not answer within " + ASK.toSeconds() + " s", e);
        }
    }

    /** Queues the job (its JSON, checked already); its id. */
    public String submit(String job, String source) {
        Protocol.Submitted s = ask(r -> new Protocol.Submit(job, source, 0, r));
        if (s.error() != null) throw new IllegalArgumentException(s.error());
        return s.id();
    }

    public Protocol.JobView job(String id) { return ask(r -> new Protocol.GetJob(id, r)); }

    public Protocol.JobView cancel(String id) { return ask(r -> new Protocol.Cancel(id, r)); }

    /** Stops the node: its agent ends every rank it started (waiting for each) before this returns. */
    @Override public void close() {
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(60, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
            Log.info("the one-node cluster did not stop within 60 s: %s", e.getMessage());
        }
    }
}
