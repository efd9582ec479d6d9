package dev.strata.trainer.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.strata.config.JobConfig;
import dev.strata.cluster.LocalCluster;
import dev.strata.cluster.Protocol;
import dev.strata.cluster.RankLauncher;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

/**
 * {@code parallel.launcher = processes}: torchrun's model on one host, run as a cluster of one node
 * ({@link LocalCluster}): its scheduler and agent start one worker JVM per rank ({@code strata worker}), which find
 * each other through Pekko; each rank's output goes to {@code run_dir/logs/rank-N.log} and rank 0's to the console
 * too. When a rank exits with an error, the others are stopped and the error names the rank and its last line; every
 * process started is ended before this returns.
 */
public final class ProcessRanks {
    private static final ObjectMapper JSON = new ObjectMapper();

    private ProcessRanks() {}

    static Trainer.Result run(JobConfig job, PrintStream out, RunDirectory.Mode mode, long exitAfter, boolean allowChanges) throws IOException {
        long started = System.nanoTime();
        var mesh = new dev.strata.parallel.DeviceMesh(job.parallel().dp(), job.parallel().pp(), job.parallel().tp());
        // Refuse before anything starts: the layout, the port, then the run directory.
        int visible = Models.onGpu(job.backend()) ? dev.strata.runtime.cuda.CudaBackend.deviceCount() : 0;
        List<String> gpus = Models.onGpu(job.backend()) ? gpuPerRank(job, visible, System.getenv("CUDA_VISIBLE_DEVICES")) : null;
        List<List<String>> numa = gpus == null ? null : numaPrefixes(job, visible, NumaBinding.here(), out);
        checkPort(job);
        RunDirectory.check(job, mode);
        Path runDir = Path.of(job.runDir()), logs = runDir.resolve(RunDirectory.LOGS);
        Files.createDirectories(logs);
        try (Stream<Path> old = Files.list(logs)) {
            for (Path p : old.toList()) if (p.getFileName().toString().matches("(hs_err_)?rank-\\d+\\.log")) Files.delete(p);
        }
        Path work = Files.createTempDirectory("strata-ranks-");
        RankLauncher launcher = new RankLauncher() {
            @Override public ProcessBuilder process(Path jobFile, String source, int rank, int slot, String[] hosts, int[] ports, boolean resume) {
                List<String> cmd = rankCommand(logs.resolve("hs_err_rank-" + rank + ".log"), List.of("--rank", "" + rank, "--ports",
                        String.join(",", Arrays.stream(ports).mapToObj(String::valueOf).toList()), "--job", jobFile.toString(), "--source", source,
                        "--mode", resume ? "RESUME" : mode.name(), "--exit-after", "" + exitAfter));
                if (allowChanges) cmd.add("--allow-changes");
                if (numa != null) cmd.addAll(0, numa.get(slot));
                ProcessBuilder pb = new ProcessBuilder(cmd);
                if (gpus != null) {
                    pb.environment().put("CUDA_VISIBLE_DEVICES", gpus.get(slot)); // the rank's GPU is its device 0
                    pb.environment().putIfAbsent("NCCL_NVLS_ENABLE", "0");        // no NVLink multicast (see NOTES)
                }
                return pb;
            }

            @Override public Path log(Path workDir, String jobId, int attempt, int rank) { return logs.resolve("rank-" + rank + ".log"); }
        };
        try (LocalCluster cluster = LocalCluster.start(mesh.size(), gpus == null ? 0 : gpus.size(), launcher, work, job.parallel().port())) {
            String id = cluster.submit(job.toJson(), job.source());
            Protocol.JobView end = follow(cluster, id, logs.resolve("rank-0.log"), out);
            if (!end.state().equals("succeeded")) throw failure(end, logs);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the ranks");
        } finally {
            try (Stream<Path> files = Files.walk(work)) {
                for (Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
            }
        }
        return result(runDir, job.checkpoint().dirFor(job.runDir()), (System.nanoTime() - started) / 1e9);
    }

    /** Rank 0's output to the console as it grows, until the job has ended; the job as it ended. */
    private static Protocol.JobView follow(LocalCluster cluster, String id, Path log, PrintStream out) throws IOException, InterruptedException {
        long read = 0;
        StringBuilder partial = new StringBuilder();
        while (true) {
            Protocol.JobView j = cluster.job(id);
            boolean ended = List.of("succeeded", "failed", "cancelled").contains(j.state()); // read the log after: nothing written before the end is missed
            if (Files.exists(log)) {
                try (var f = new java.io.RandomAccessFile(log.toFile(), "r")) {
                    byte[] bytes = new byte[Math.toIntExact(Math.max(0, f.length() - read))];
                    f.seek(read);
                    f.readFully(bytes);
                    read += bytes.length;
                    partial.append(new String(bytes, StandardCharsets.UTF_8));
                }
                int nl;
                while ((nl = partial.indexOf("\n")) >= 0) {
                    String line = partial.substring(0, nl);
                    partial.delete(0, nl + 1);
                    if (!line.startsWith("WARNING: Using incubator modules")) out.println(line); // the JVM's, as the launcher script hides it
                }
            }
            if (ended) {
                if (!partial.isEmpty()) out.println(partial);
                return j;
            }
            Thread.sleep(100);
        }
    }

    /** The failed rank (the one whose exit failed the attempt; the others were stopped after it) and its last line. */
    private static IllegalStateException failure(Protocol.JobView j, Path logs) throws IOException {
        for (int r = 0; r < j.rankStates().length; r++) {
            String state = j.rankStates()[r];
            if (state.startsWith("exited ") && !state.equals("exited 0"))
                return new IllegalStateException("rank " + r + " of " + j.ranks() + " " + state.replace("exited ", "exited with code ") + ": "
                        + lastLine(logs.resolve("rank-" + r + ".log")) + " (every rank's output is in " + logs + ")");
        }
        return new IllegalStateException("the ranks stopped: " + j.reason() + " (every rank's output is in " + logs + ")");
    }

    /**
     * The command line of a rank process: this JVM's java and settings, its class path, the worker entry point with
     * args. A JVM that crashes (a native library's abort) leaves its report at errorFile.
     */
    public static List<String> rankCommand(Path errorFile, List<String> args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments())
            if (!a.startsWith("-agentlib") && !a.startsWith("-javaagent") && !a.startsWith("-XX:StartFlightRecording") && !a.startsWith("-Dstrata.tty")
                    && !a.startsWith("-XX:ErrorFile"))
                cmd.add(a); // rank 0 prints plain lines, which its log keeps as they are
        cmd.add("-XX:ErrorFile=" + errorFile);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "dev.strata.trainer.cli.Main", "worker"));
        cmd.addAll(args);
        return cmd;
    }

    /**
     * Each rank's GPU as the child's CUDA_VISIBLE_DEVICES value: parallel.gpus (default every visible one), taken in
     * order, one per rank; indices count the GPUs this process sees, so under CUDA_VISIBLE_DEVICES they map through
     * it. Too few GPUs, or an index past the last, is one line before anything starts.
     */
    static List<String> gpuPerRank(JobConfig job, int visible, String visibleDevices) {
        int world = job.parallel().worldSize();
        List<Integer> asked = askedGpus(job, visible);
        for (int g : asked)
            if (g >= visible)
                throw new IllegalArgumentException(job.source() + ": parallel.gpus lists GPU " + g + ", but this host shows " + visible + " GPU"
                        + (visible == 1 ? "" : "s") + (visible > 0 ? " (0.." + (visible - 1) + ")" : ""));
        if (asked.size() < world)
            throw new IllegalArgumentException(job.source() + ": " + layout(job) + " on the GPU needs " + world + " GPUs, one per rank, but "
                    + (job.parallel().gpus().isEmpty() ? "this host shows " + visible : "parallel.gpus lists " + asked.size())
                    + "; lower parallel.dp, tp or pp, or run where more GPUs are visible");
        String[] names = visibleDevices == null || visibleDevices.isBlank() ? null : visibleDevices.split(",");
        List<String> perRank = new ArrayList<>();
        for (int r = 0; r < world; r++) {
            int g = asked.get(r);
            perRank.add(names != null && g < names.length ? names[g].trim() : Integer.toString(g));
        }
        return perRank;
    }

    /** parallel.gpus, or every visible GPU: the indices ranks take in order. */
    private static List<Integer> askedGpus(JobConfig job, int visible) {
        List<Integer> asked = job.parallel().gpus();
        return asked.isEmpty() ? java.util.stream.IntStream.range(0, visible).boxed().toList() : asked;
    }

    /** Each rank's numactl prefix, for its GPU's NUMA node ({@link NumaBinding}); said once where it binds anything. */
    static List<List<String>> numaPrefixes(JobConfig job, int visible, NumaBinding numa, PrintStream out) {
        List<Integer> asked = askedGpus(job, visible);
        List<List<String>> prefixes = new ArrayList<>();
        List<Integer> nodes = new ArrayList<>();
        for (int r = 0; r < job.parallel().worldSize(); r++) {
            String bus = dev.strata.runtime.cuda.CudaBackend.pciBusId(asked.get(r));
            prefixes.add(numa.prefix(bus));
            nodes.add(numa.nodeOf(bus));
        }
        if (prefixes.stream().anyMatch(p -> !p.isEmpty())) out.println("numa: the ranks' GPUs are on nodes " + nodes + " of " + numa.nodes() + "; each rank runs on its GPU's node");
        return prefixes;
    }

    /** "parallel.dp = 2 × parallel.tp = 2", naming only what is above 1. */
    static String layout(JobConfig job) {
        var p = job.parallel();
        List<String> parts = new ArrayList<>();
        if (p.dp() > 1 || p.tp() == 1) parts.add("parallel.dp = " + p.dp());
        if (p.tp() > 1) parts.add("parallel.tp = " + p.tp());
        if (p.pp() > 1) parts.add("parallel.pp = " + p.pp());
        return String.join(" × ", parts);
    }

    /** parallel.port, where one is asked for, must be free here: one line when it is not. */
    static void checkPort(JobConfig job) throws IOException {
        int asked = job.parallel().port();
        if (asked == 0) return;
        try (ServerSocket s = new ServerSocket()) {
            s.setReuseAddress(true);
            s.bind(new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), asked));
        } catch (java.net.BindException e) {
            throw new IllegalArgumentException(job.source() + ": parallel.port = " + asked + " is in use on this host; pick another, or 0 for any free one");
        }
    }

    private static String lastLine(Path log) throws IOException {
        if (!Files.exists(log)) return "no output";
        List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8).stream().filter(l -> !l.isBlank()).toList();
        for (int i = lines.size() - 1; i >= 0; i--) if (lines.get(i).startsWith("error: ")) return lines.get(i).substring(7);
        for (int i = 0; i + 1 < lines.size(); i++) // the JVM's own crash banner: say where it stopped and where the report is
            if (lines.get(i).startsWith("# Problematic frame:"))
                return "the JVM crashed in " + lines.get(i + 1).substring(1).trim() + " (report: " + log.resolveSibling(log.getFileName().toString()
                        .replace("rank-", "hs_err_rank-")) + ")";
        return lines.isEmpty() ? "no output" : lines.get(lines.size() - 1);
    }

    /** What the ranks left in the run directory: the last step, losses and checkpoint (the model stays in the workers). */
    private static Trainer.Result result(Path runDir, String checkpoints, double wall) throws IOException {
        long step = 0;
        double loss = Double.NaN, val = Double.NaN, tokens = 0;
        for (String line : Files.readAllLines(runDir.resolve(RunDirectory.METRICS), StandardCharsets.UTF_8)) {
            JsonNode n = JSON.readTree(line);
            if (n.has("loss") && !n.has("skipped")) {
                step = n.get("step").asLong();
                loss = n.get("loss").asDouble();
                tokens = n.path("tokens_per_s").asDouble();
            }
            if (n.has("val_loss")) val = n.get("val_loss").asDouble();
        }
        var latest = new dev.strata.checkpoints.Checkpointer(dev.strata.checkpoints.Storage.forPath(checkpoints), checkpoints, 1, 0).latest();
        return new Trainer.Result(step, loss, val, tokens, wall, latest.orElse(null), null);
    }
}
