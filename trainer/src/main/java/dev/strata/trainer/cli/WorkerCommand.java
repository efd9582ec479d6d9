package dev.strata.trainer.cli;

import dev.strata.config.JobConfig;
import dev.strata.trainer.train.RunDirectory;
import dev.strata.trainer.train.Worker;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** One rank of a job that {@code strata train} (parallel.launcher = processes) or a cluster's worker agent started; not for users. */
@Command(name = "worker", hidden = true, description = "One rank of a multi-process job (started by strata train or a cluster worker).")
final class WorkerCommand implements Callable<Integer> {
    @Option(names = "--rank", required = true) int rank;
    @Option(names = "--ports", split = ",", description = "each group's rendezvous port, in MeshComms.groups order") java.util.List<Integer> ports = java.util.List.of();
    @Option(names = "--hosts", split = ",", description = "each rank's host, in rank order; default: every rank on 127.0.0.1") java.util.List<String> hosts = java.util.List.of();
    @Option(names = "--job", required = true) Path job;
    @Option(names = "--source", required = true) String source;
    @Option(names = "--mode", required = true) RunDirectory.Mode mode;
    @Option(names = "--exit-after", defaultValue = "0") long exitAfter;
    @Option(names = "--allow-changes") boolean allowChanges;

    @Override public Integer call() throws Exception {
        exitWithParent();
        JobConfig cfg = JobConfig.parse(Files.readString(job), source);
        int world = cfg.parallel().worldSize();
        Worker.run(cfg, System.out, mode, exitAfter, allowChanges, rank, hosts.isEmpty() ? java.util.Collections.nCopies(world, "127.0.0.1") : hosts, ports);
        return 0;
    }

    /** A worker whose launcher died (killed, crashed) stops too, instead of training on alone. */
    private static void exitWithParent() {
        ProcessHandle parent = ProcessHandle.current().parent().orElse(null);
        if (parent == null) return;
        Thread watch = new Thread(() -> {
            while (parent.isAlive()) {
                try {
                    Thread.sleep(500);
                } catch (InterruptedException e) {
                    return;
                }
            }
            System.err.println("error: the launcher (pid " + parent.pid() + ") is gone; stopping");
            Runtime.getRuntime().halt(1);
        }, "watch-launcher");
        watch.setDaemon(true);
        watch.start();
    }
}
