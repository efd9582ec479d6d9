package dev.strata.trainer.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.strata.config.JobConfig;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** strata submit, jobs, status, logs and cancel: a cluster's jobs through its coordinator's REST API. */
final class JobCommands {
    private JobCommands() {}

    /** What every job command takes: the coordinator's address and the cluster's token. */
    abstract static class OnCluster implements Callable<Integer> {
        @Option(names = "--cluster", required = true, description = "The coordinator's REST address, e.g. http://127.0.0.1:8080") String cluster;
        @Mixin TokenOption token;

        ClusterClient client() { return new ClusterClient(cluster, token.token()); }
    }

    @Command(name = "submit", mixinStandardHelpOptions = true, description = "Send a job to a cluster; prints its id.")
    static final class Submit extends OnCluster {
        @Parameters(index = "0", paramLabel = "JOB", description = "the job file") Path job;
        @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override a job setting (repeatable).") List<String> overrides = new ArrayList<>();
        @Option(names = "--wait-timeout", description = "Fail the job if the cluster lacks its ranks for this long, e.g. 10m (default: wait).") Duration waitTimeout;

        @Override public Integer call() {
            JobConfig cfg = TrainCommand.withOverrides(JobConfig.load(job), overrides); // the errors strata train gives, before anything is sent
            JsonNode r = client().post("/api/jobs", Map.of("job", cfg.toJson(), "source", job.toString(),
                    "waitTimeoutSeconds", waitTimeout == null ? 0 : waitTimeout.toSeconds()));
            System.out.println(r.path("id").asText());
            return 0;
        }
    }

    @Command(name = "jobs", mixinStandardHelpOptions = true, description = "A cluster's jobs, a line each.")
    static final class Jobs extends OnCluster {
        @Override public Integer call() {
            JsonNode jobs = client().get("/api/jobs");
            System.out.printf(Locale.ROOT, "%-10s %-11s %-22s %-14s %8s %9s %s%n", "JOB", "STATE", "NAME", "LAYOUT", "STEP", "LOSS", "RESTARTS");
            for (JsonNode j : jobs)
                System.out.printf(Locale.ROOT, "%-10s %-11s %-22s %-14s %8s %9.4f %d%n", j.path("id").asText(), j.path("state").asText(), j.path("name").asText(),
                        j.path("layout").asText().replace(" ", ""), j.path("step").asLong() + "/" + j.path("steps").asLong(), j.path("loss").asDouble(), j.path("restarts").asInt());
            return 0;
        }
    }

    @Command(name = "status", mixinStandardHelpOptions = true, description = "One job: state and why, progress, what it waits for, where its ranks run.")
    static final class Status extends OnCluster {
        @Parameters(index = "0", paramLabel = "JOB") String id;

        @Override public Integer call() {
            print(client().get("/api/jobs/" + id));
            return 0;
        }
    }

    static void print(JsonNode j) {
        System.out.printf(Locale.ROOT, "%s (%s): %s%s%n", j.path("id").asText(), j.path("name").asText(), j.path("state").asText(),
                j.path("reason").asText().isEmpty() ? "" : " — " + j.path("reason").asText());
        System.out.printf(Locale.ROOT, "  %d ranks, %s; step %d of %d, loss %.4f, %,.0f tokens/s; %d restart(s)%n", j.path("ranks").asInt(), j.path("layout").asText(),
                j.path("step").asLong(), j.path("steps").asLong(), j.path("loss").asDouble(), j.path("tokensPerSecond").asDouble(), j.path("restarts").asInt());
        if (!j.path("waitingFor").asText().isEmpty()) System.out.println("  waiting for " + j.path("waitingFor").asText());
        double mfu = j.path("mfu").asDouble(Double.NaN), eta = j.path("etaSeconds").asDouble(-1);
        if (Double.isFinite(mfu) || (eta >= 0 && j.path("state").asText().equals("running")))
            System.out.printf(Locale.ROOT, "  %s%s%n", Double.isFinite(mfu) ? String.format(Locale.ROOT, "MFU %.1f%%", 100 * mfu) : "MFU unknown (no GPU peak)",
                    eta >= 0 && j.path("state").asText().equals("running") ? String.format(Locale.ROOT, ", about %.0f s to go", eta) : "");
        for (int r = 0; r < j.path("nodes").size(); r++)
            System.out.printf("  rank %d on %s: %s%n", r, j.path("nodes").get(r).asText(), j.path("rankStates").path(r).asText("ended"));
    }

    @Command(name = "logs", mixinStandardHelpOptions = true, description = "Rank 0's output of a job's latest attempt; -f follows it.")
    static final class Logs extends OnCluster {
        @Parameters(index = "0", paramLabel = "JOB") String id;
        @Option(names = {"-f", "--follow"}, description = "Keep printing until the attempt ends.") boolean follow;

        @Override public Integer call() throws InterruptedException {
            long offset = 0;
            while (true) {
                JsonNode c = client().get("/api/jobs/" + id + "/logs?offset=" + offset);
                System.out.print(c.path("text").asText());
                System.out.flush();
                boolean more = c.path("nextOffset").asLong() > offset;
                offset = c.path("nextOffset").asLong();
                if (!follow || c.path("finished").asBoolean() && !more) return 0;
                if (!more) Thread.sleep(1000);
            }
        }
    }

    @Command(name = "cancel", mixinStandardHelpOptions = true, description = "Stop a job's ranks and mark it cancelled.")
    static final class Cancel extends OnCluster {
        @Parameters(index = "0", paramLabel = "JOB") String id;

        @Override public Integer call() {
            print(client().post("/api/jobs/" + id + "/cancel", Map.of()));
            return 0;
        }
    }
}
