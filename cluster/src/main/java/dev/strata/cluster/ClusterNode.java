package dev.strata.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.AddressFromURIString;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.ClusterSingleton;
import org.apache.pekko.cluster.typed.JoinSeedNodes;
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

    /** Remoting over TLS (cluster.tls): this node's key and the certificates it trusts, in PKCS12 or JKS stores, and their password. */
    public record Tls(Path keystore, Path truststore, String password) {}

    /**
     * The Pekko settings of a node on host:port with role, joining seeds; tls null: plain TCP. keep-oldest downs a
     * lost oldest node too when it is alone (down-if-alone): a coordinator killed leaves its workers, and their
     * ranks, running.
     */
    static Config config(String host, int port, List<String> seeds, String role, Duration failureDetection, Tls tls) {
        String transport = tls == null ? "transport = tcp" : """
                transport = tls-tcp
                    ssl.config-ssl-engine {
                      key-store = "%s", trust-store = "%s"
                      key-store-password = "%s", key-password = "%s", trust-store-password = "%s"
                      protocol = "TLSv1.3", enabled-algorithms = ["TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"]
                      require-mutual-authentication = on
                    }""".formatted(quoted(tls.keystore().toAbsolutePath().toString()), quoted(tls.truststore().toAbsolutePath().toString()),
                quoted(tls.password()), quoted(tls.password()), quoted(tls.password()));
        return ConfigFactory.parseString("""
                pekko {
                  loglevel = WARNING
                  actor {
                    provider = cluster
                    serializers.kryo = "dev.strata.cluster.KryoSerializer"
                    serialization-bindings { "dev.strata.cluster.ClusterMessage" = kryo }
                    allow-java-serialization = off
                  }
                  remote.artery {
                    %s
                    canonical.hostname = "%s", canonical.port = %d, bind.hostname = "%s"
                  }
                  cluster {
                    seed-nodes = [%s]
                    seed-node-timeout = 20s  # a restarted coordinator waits this long for its workers before founding a cluster of its own
                    roles = [%s]
                    downing-provider-class = "org.apache.pekko.cluster.sbr.SplitBrainResolverProvider"
                    split-brain-resolver { active-strategy = keep-oldest, stable-after = %dms, keep-oldest.down-if-alone = on }
                    failure-detector.acceptable-heartbeat-pause = %dms
                    jmx.enabled = off
                  }
                  coordinated-shutdown.exit-jvm = on
                }
                """.formatted(transport, host, port, host, String.join(", ", seeds.stream().map(a -> "\"" + a + "\"").toList()), role,
                        failureDetection.toMillis(), failureDetection.toMillis()))
                .withFallback(ConfigFactory.defaultReference(ClusterNode.class.getClassLoader()));
    }

    private static String quoted(String s) { return s.replace("\\", "\\\\").replace("\"", "\\\""); }

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

    /**
     * The seed node: the scheduler (on this node while it lives) and the REST API at httpHost:httpPort. It joins
     * through itself first and then the nodes its store recorded, so a restarted coordinator rejoins the workers
     * that ran on without it, rather than founding a cluster of its own.
     */
    public static ActorSystem<Void> coordinator(String host, int port, int httpPort, String token, Coordinator.Settings settings, Duration failureDetection, Tls tls) {
        ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), SYSTEM, config(host, port, List.of(), "coordinator", failureDetection, tls));
        List<Address> seeds = new ArrayList<>(List.of(Cluster.get(system).selfMember().address()));
        for (String a : settings.store().nodeAddresses()) seeds.add(AddressFromURIString.parse(a));
        if (seeds.size() > 1) Log.info("coordinator: rejoining the cluster through the %d node(s) last recorded", seeds.size() - 1);
        Cluster.get(system).manager().tell(new JoinSeedNodes(seeds));
        ActorRef<Protocol.ToCoordinator> coordinator = ClusterSingleton.get(system)
                .init(singleton(settings).withSettings(ClusterSingletonSettings.create(system).withRole("coordinator")));
        RestApi.bind(system, coordinator, host, httpPort, token);
        return system;
    }

    /** A host's worker: joins seed (host:port) and offers node's slots. */
    public static ActorSystem<Void> worker(String host, String seed, Protocol.NodeInfo node, String token, RankLauncher launcher, Path workDir,
                                           Duration failureDetection, Tls tls) {
        Coordinator.Settings none = new Coordinator.Settings("", Duration.ZERO, 0, 0, Duration.ZERO, null, (job, source) -> "not the coordinator");
        ActorSystem<Void> system = ActorSystem.create(Behaviors.setup(ctx -> {
            ActorRef<Protocol.ToCoordinator> coordinator = ClusterSingleton.get(ctx.getSystem())
                    .init(singleton(none).withSettings(ClusterSingletonSettings.create(ctx.getSystem()).withRole("coordinator")));
            ctx.spawn(WorkerAgent.create(coordinator, node, sha256(token), launcher, workDir), "agent");
            return Behaviors.empty();
        }), SYSTEM, config(host, 0, List.of("pekko://" + SYSTEM + "@" + seed), "worker", failureDetection, tls));
        return system;
    }
}
