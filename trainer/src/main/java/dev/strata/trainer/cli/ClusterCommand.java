package dev.strata.trainer.cli;

import dev.strata.cluster.ClusterNode;
import dev.strata.cluster.Coordinator;
import dev.strata.cluster.JobStore;
import dev.strata.cluster.Protocol;
import dev.strata.config.JobConfig;
import dev.strata.trainer.train.ProcessRanks;
import dev.strata.trainer.train.Trainer;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "cluster", mixinStandardHelpOptions = true, description = "Start cluster nodes: the coordinator, or a host's worker.",
        subcommands = {ClusterCommand.CoordinatorNode.class, ClusterCommand.WorkerNode.class})
final class ClusterCommand extends CommandGroup {

    @Command(name = "coordinator", mixinStandardHelpOptions = true, description = "The seed node: scheduler and REST API. Runs until stopped.")
    static final class CoordinatorNode implements Callable<Integer> {
        @Option(names = "--host", defaultValue = "127.0.0.1", description = "The interface to listen on, and the address workers reach (default ${DEFAULT-VALUE}).") String host;
        @Option(names = "--port", defaultValue = "2551", description = "The cluster port (default ${DEFAULT-VALUE}).") int port;
        @Option(names = "--http", defaultValue = "8080", description = "The REST API's port (default ${DEFAULT-VALUE}).") int http;
        @Mixin TokenOption token;
        @Option(names = "--max-restarts", defaultValue = "3", description = "Restarts of a job after a failure (default ${DEFAULT-VALUE}).") int maxRestarts;
        @Option(names = "--wait-for-replacement", defaultValue = "30s", description = "How long a failed job waits for its lost slots before resuming with dp reduced (default ${DEFAULT-VALUE}).")
        Duration waitForReplacement;
        @Option(names = "--failure-detection", defaultValue = "5s", description = "How long a silent node may stay before it counts as lost (default ${DEFAULT-VALUE}).")
        Duration failureDetection;
        @Option(names = "--first-port", defaultValue = "31000", description = "Rendezvous ports for jobs' ranks come from this and the 999 after it (default ${DEFAULT-VALUE}).")
        int firstPort;
        @Option(names = "--db", defaultValue = "jdbc:h2:file:${sys:user.home}/.strata/coordinator/jobs",
                description = "The job records' database, a JDBC URL: H2 (default ${DEFAULT-VALUE}) or jdbc:postgresql://HOST/DB.") String db;
        @Option(names = "--db-user", defaultValue = "", description = "The database's user (default: none, as H2 takes it).") String dbUser;
        @Option(names = "--db-password-file", description = "A file holding the database's password (default: STRATA_DB_PASSWORD, or none).") Path dbPasswordFile;
        @Option(names = "--recover-within", defaultValue = "30s", description = "After a restart, how long running jobs' nodes have to report their ranks (default ${DEFAULT-VALUE}).")
        Duration recoverWithin;
        @Mixin TlsOptions tls;

        @Override public Integer call() throws Exception {
            String token = this.token.token();
            requireCluster("dev.strata.cluster.ClusterNode", "org.apache.pekko.http.javadsl.Http");
            ClusterNode.Tls tls = this.tls.tls();
            String password = dbPasswordFile != null || System.getenv("STRATA_DB_PASSWORD") != null
                    ? ClusterClient.secret(dbPasswordFile, "--db-password-file", "STRATA_DB_PASSWORD", "database password") : "";
            try (JobStore store = JobStore.open(db, dbUser, password)) {
                var settings = new Coordinator.Settings(ClusterNode.sha256(token), waitForReplacement, maxRestarts, firstPort, recoverWithin, store, ClusterCommand::check);
                var system = ClusterNode.coordinator(host, port, http, token, settings, failureDetection, tls);
                System.out.printf("coordinator at %s:%d%s, REST API at http://%s:%d/api, jobs kept in %s%n", host, port, tls == null ? "" : " (TLS)", host, http, db);
                system.getWhenTerminated().toCompletableFuture().join();
            }
            return 0;
        }
    }

    /** One line, instead of a missing class later, where this installation lacks the cluster (a node bundle built with --no-cluster, or without Pekko HTTP). */
    static void requireCluster(String... classes) {
        for (String c : classes) {
            try {
                Class.forName(c, false, ClusterCommand.class.getClassLoader());
            } catch (ClassNotFoundException | LinkageError e) {
                throw new IllegalStateException("this installation lacks " + c + ": a GPU node bundle carries the worker (unless built with --no-cluster), "
                        + "the coordinator runs from a full install (./strata)");
            }
        }
    }

    /** A job's text and source to the one-line error strata train gives for it, or null when it may run. */
    static String check(String text, String source) {
        try {
            JobConfig job = JobConfig.parse(text, source);
            Trainer.checkLayout(job);
            if (Files.exists(Path.of(job.runDir(), "run.json")))
                return job.source() + ": run_dir " + job.runDir() + " already holds a run; give the job a new run_dir";
            return null;
        } catch (RuntimeException | java.io.IOException e) {
            return e.getMessage();
        }
    }

    @Command(name = "worker", mixinStandardHelpOptions = true, description = "A host's agent: joins the cluster and runs the ranks it is given. Runs until stopped.")
    static final class WorkerNode implements Callable<Integer> {
        @Option(names = "--join", required = true, description = "The coordinator's cluster address, host:port.") String join;
        @Option(names = "--host", defaultValue = "127.0.0.1", description = "This host's address, which ranks and the cluster reach (default ${DEFAULT-VALUE}).") String host;
        @Option(names = "--slots", description = "Ranks this host takes (default: its GPUs, or 1 without).") Integer slots;
        @Option(names = "--gpus", defaultValue = "all", description = "all, or none (default ${DEFAULT-VALUE}).") String gpus;
        @Option(names = "--name", description = "The node's name (default: host-pid).") String name;
        @Option(names = "--work-dir", defaultValue = "${sys:java.io.tmpdir}/strata-worker", description = "Where ranks' logs go (default ${DEFAULT-VALUE}).") Path workDir;
        @Mixin TokenOption token;
        @Option(names = "--failure-detection", defaultValue = "5s", description = "As the coordinator's (default ${DEFAULT-VALUE}).") Duration failureDetection;
        @Mixin TlsOptions tls;

        @Override public Integer call() throws Exception {
            String token = this.token.token();
            requireCluster("dev.strata.cluster.ClusterNode");
            ClusterNode.Tls tls = this.tls.tls();
            int gpuCount = gpus.equals("none") ? 0 : visibleGpus();
            int n = slots != null ? slots : Math.max(1, gpuCount);
            if (n < 1 || (gpuCount > 0 && n > gpuCount))
                throw new IllegalArgumentException("--slots " + n + ": a host takes 1 to " + Math.max(1, gpuCount) + " ranks here (one per GPU" + (gpuCount > 0 ? "" : ", or --gpus none for CPU ranks") + ")");
            String nodeName = name != null ? name : host + "-" + ProcessHandle.current().pid();
            var info = new Protocol.NodeInfo(nodeName, host, n, gpuCount, Runtime.getRuntime().availableProcessors(),
                    ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getTotalMemorySize());
            Path dir = Files.createDirectories(workDir.resolve(nodeName));
            String[] visible = System.getenv("CUDA_VISIBLE_DEVICES") == null ? null : System.getenv("CUDA_VISIBLE_DEVICES").split(",");
            var numa = dev.strata.trainer.train.NumaBinding.here();
            List<List<String>> onNode = new ArrayList<>(); // each slot's rank runs on its GPU's NUMA node, where there are several
            for (int slot = 0; slot < n; slot++) onNode.add(gpuCount > 0 ? numa.prefix(dev.strata.runtime.cuda.CudaBackend.pciBusId(slot)) : List.of());
            var system = ClusterNode.worker(host, join, info, token, (jobFile, source, rank, slot, hosts, ports, resume) -> {
                List<String> args = new ArrayList<>(List.of("--rank", "" + rank, "--hosts", String.join(",", hosts), "--ports",
                        String.join(",", java.util.Arrays.stream(ports).mapToObj(String::valueOf).toList()), "--job", jobFile.toString(), "--source", source,
                        "--mode", resume ? "RESUME" : "FRESH"));
                if (resume) args.add("--allow-changes"); // a restart on fewer replicas changes the per-rank batch, keeping the global one
                List<String> cmd = new ArrayList<>(onNode.get(slot));
                cmd.addAll(ProcessRanks.rankCommand(jobFile.resolveSibling("hs_err_rank-" + rank + ".log"), args));
                ProcessBuilder pb = new ProcessBuilder(cmd);
                if (gpuCount > 0) { // a slot is a GPU: the rank's is its device 0
                    pb.environment().put("CUDA_VISIBLE_DEVICES", visible != null && slot < visible.length ? visible[slot].trim() : Integer.toString(slot));
                    pb.environment().putIfAbsent("NCCL_NVLS_ENABLE", "0");
                }
                return pb;
            }, dir, failureDetection, tls);
            System.out.printf("worker %s: %d slot(s), %d GPU(s)%s; joining %s%n", nodeName, n, gpuCount,
                    onNode.stream().anyMatch(p -> !p.isEmpty()) ? ", each rank on its GPU's NUMA node" : "", join);
            system.getWhenTerminated().toCompletableFuture().join();
            return 0;
        }

        private static int visibleGpus() {
            try {
                return dev.strata.runtime.cuda.CudaBackend.deviceCount();
            } catch (Throwable noCuda) {
                return 0;
            }
        }
    }
}
