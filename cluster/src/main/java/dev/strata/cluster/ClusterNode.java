package dev.strata.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.typed.ClusterSingleton;
import org.apache.pekko.cluster.typed.ClusterSingletonSettings;
import org.apache.pekko.cluster.typed.SingletonActor;

/**
 * Starts a cluster node: the coordinator (seed node, the scheduler singleton, the REST API) or a worker (its agent).
 * Remoting listens on the given interface only; a node the split-brain resolver downs (unreachable past
 * stable-after) leaves and exits, its rank processes stopped with it.
 */
public final class ClusterNode {
    private ClusterNode() {}

    static final String SYSTEM = "strata-cluster";

    /** The Pekko settings of a node on host:port that joins the seed node seed (host:port), with role. */
    static Config config(String host, int port, String seed, String role, Duration failureDetection) {
        return ConfigFactory.parseString("""
                pekko {
                  loglevel = WARNING
                  actor {
                    provider = cluster
                    serializers.kryo = "dev.strata.cluster.KryoSerializer"
                    serialization-bindings { "dev.strata.cluster.ClusterMessage" = kryo }
                    allow-java-serialization = off
                  }
                  remote.artery { transport = tcp, canonical.hostname = "%s", canonical.port = %d, bind.hostname = "%s" }
                  cluster {
                    seed-nodes = ["pekko://%s@%s"]
                    roles = [%s]
                    downing-provider-class = "org.apache.pekko.cluster.sbr.SplitBrainResolverProvider"
                    split-brain-resolver { active-strategy = keep-oldest, stable-after = %dms, keep-oldest.down-if-alone = off }
                    failure-detector.acceptable-heartbeat-pause = %dms
                    jmx.enabled = off
                  }
                  coordinated-shutdown.exit-jvm = on
                }
                """.formatted(host, port, host, SYSTEM, seed, role, failureDetection.toMillis(), failureDetection.toMillis()))
                .withFallback(ConfigFactory.defaultReference(ClusterNode.class.getClassLoader()));
    }

    public static String sha256(String token) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(token.getBytes(StandardCharsets.UTF_8)));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static SingletonActor<Protocol.ToCoordinator> singleton(Coordinator.Settings settings) {
        return SingletonActor.of(Coordinator.create(settings), "coordinator");
    }

    /** The seed node: the scheduler (on this node while it lives) and the REST API at httpHost:httpPort. */
    public static ActorSystem<Void> coordinator(String host, int port, int httpPort, String token, Coordinator.Settings settings, Duration failureDetection) {
        ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), SYSTEM, config(host, port, host + ":" + port, "coordinator", failureDetection));
        ActorRef<Protocol.ToCoordinator> coordinator = ClusterSingleton.get(system)
                .init(singleton(settings).withSettings(ClusterSingletonSettings.create(system).withRole("coordinator")));
        RestApi.bind(system, coordinator, host, httpPort, token);
        return system;
    }

    /** A host's worker: joins seed (host:port) and offers node's slots. */
    public static ActorSystem<Void> worker(String host, String seed, Protocol.NodeInfo node, String token, RankLauncher launcher, Path workDir,
                                           Duration failureDetection) {
        Coordinator.Settings none = new Coordinator.Settings("", Duration.ZERO, 0, 0, (job, source) -> "not the coordinator");
        ActorSystem<Void> system = ActorSystem.create(Behaviors.setup(ctx -> {
            ActorRef<Protocol.ToCoordinator> coordinator = ClusterSingleton.get(ctx.getSystem())
                    .init(singleton(none).withSettings(ClusterSingletonSettings.create(ctx.getSystem()).withRole("coordinator")));
            ctx.spawn(WorkerAgent.create(coordinator, node, sha256(token), launcher, workDir), "agent");
            return Behaviors.empty();
        }), SYSTEM, config(host, 0, seed, "worker", failureDetection));
        return system;
    }
}
