package dev.strata.trainer.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.strata.config.JobConfig;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * {@code parallel.launcher = processes}: torchrun's model on one host. This JVM starts one worker JVM per rank
 * ({@code strata worker}), which find each other through Pekko at a port picked here (rank 0 is the rendezvous),
 * writes each rank's output to {@code run_dir/logs/rank-N.log} and shows rank 0's on the console. When a rank exits
 * with an error, the others are stopped and the error names the rank and its last line; every process started is
 * ended before this returns.
 */
public final class ProcessRanks {
    private static final ObjectMapper JSON = new ObjectMapper();

    private ProcessRanks() {}

    static Trainer.Result run(JobConfig job, PrintStream out, RunDirectory.Mode mode, long exitAfter, boolean allowChanges) throws IOException {
        long started = System.nanoTime();
        var mesh = new dev.strata.parallel.DeviceMesh(job.parallel().dp(), job.parallel().pp(), job.parallel().tp());
        // Refuse before anything starts: the layout, then the run directory.
        List<String> gpus = Models.onGpu(job.backend())
                ? gpuPerRank(job, dev.strata.runtime.cuda.CudaBackend.deviceCount(), System.getenv("CUDA_VISIBLE_DEVICES")) : null;
        String ports = rendezvousPorts(job, dev.strata.parallel.MeshComms.groups(mesh).size());
        RunDirectory.check(job, mode);
        Path runDir = Path.of(job.runDir()), logs = runDir.resolve(RunDirectory.LOGS);
        Files.createDirectories(logs);
        try (Stream<Path> old = Files.list(logs)) {
            for (Path p : old.toList()) if (p.getFileName().toString().matches("(hs_err_)?rank-\\d+\\.log")) Files.delete(p);
        }
        Path jobFile = Files.createTempFile("strata-job-", ".conf");
        Files.writeString(jobFile, job.toJson());
        List<Process> ranks = new ArrayList<>();
        Thread console = null;
        // Should this JVM go (Ctrl-C, a kill), its workers go with it; they also watch for it themselves.
        Thread reaper = new Thread(() -> ranks.forEach(Process::destroyForcibly), "stop-ranks");
        Runtime.getRuntime().addShutdownHook(reaper);
        try {
            for (int r = 0; r < mesh.size(); r++) {
                List<String> cmd = rankCommand(logs.resolve("hs_err_rank-" + r + ".log"), List.of("--rank", "" + r, "--ports", ports,
                        "--job", jobFile.toString(), "--source", job.source(), "--mode", mode.name(), "--exit-after", "" + exitAfter));
                if (allowChanges) cmd.add("--allow-changes");
                ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
                if (gpus != null) {
                    pb.environment().put("CUDA_VISIBLE_DEVICES", gpus.get(r)); // the rank's GPU is its device 0
                    pb.environment().putIfAbsent("NCCL_NVLS_ENABLE", "0");     // no NVLink multicast (see NOTES)
                }
                Path log = logs.resolve("rank-" + r + ".log");
                if (r > 0) pb.redirectOutput(log.toFile());
                Process p = pb.start();
                ranks.add(p);
                if (r == 0) console = echo(p, log, out);
            }
            waitForAll(ranks, logs);
            if (console != null) console.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the ranks");
        } finally {
            for (Process p : ranks) if (p.isAlive()) p.destroyForcibly();
            for (Process p : ranks) {
                try {
                    p.waitFor(10, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            Files.deleteIfExists(jobFile);
            try {
                Runtime.getRuntime().removeShutdownHook(reaper);
            } catch (IllegalStateException e) {
                // the JVM is already shutting down: the hook runs
            }
        }
        return result(runDir, job.checkpoint().dirFor(job.runDir()), (System.nanoTime() - started) / 1e9);
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
        List<Integer> asked = job.parallel().gpus();
        if (asked.isEmpty()) asked = java.util.stream.IntStream.range(0, visible).boxed().toList();
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

    /** "parallel.dp = 2 × parallel.tp = 2", naming only what is above 1. */
    static String layout(JobConfig job) {
        var p = job.parallel();
        List<String> parts = new ArrayList<>();
        if (p.dp() > 1 || p.tp() == 1) parts.add("parallel.dp = " + p.dp());
        if (p.tp() > 1) parts.add("parallel.tp = " + p.tp());
        if (p.pp() > 1) parts.add("parallel.pp = " + p.pp());
        return String.join(" × ", parts);
    }

    /**
     * One port per group, comma-separated: the first parallel.port when it is free here (one line when it is not),
     * else any free one; the others any free ones, held together until all are picked so none repeats.
     */
    static String rendezvousPorts(JobConfig job, int groups) throws IOException {
        int asked = job.parallel().port();
        List<ServerSocket> held = new ArrayList<>();
        try {
            for (int g = 0; g < groups; g++) {
                ServerSocket s = new ServerSocket();
                held.add(s);
                s.setReuseAddress(true);
                try {
                    s.bind(new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), g == 0 ? asked : 0));
                } catch (java.net.BindException e) {
                    throw new IllegalArgumentException(job.source() + ": parallel.port = " + asked + " is in use on this host; pick another, or 0 for any free one");
                }
            }
            return String.join(",", held.stream().map(s -> Integer.toString(s.getLocalPort())).toList());
        } finally {
            for (ServerSocket s : held) s.close();
        }
    }

    /** Rank 0's output to the console and to its log, line by line. */
    private static Thread echo(Process p, Path log, PrintStream out) {
        Thread t = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
                 PrintWriter w = new PrintWriter(Files.newBufferedWriter(log, StandardCharsets.UTF_8), true)) {
                String line;
                while ((line = r.readLine()) != null) {
                    if (line.startsWith("WARNING: Using incubator modules")) continue; // the JVM's, as the launcher script hides it
                    out.println(line);
                    w.println(line);
                }
            } catch (IOException e) {
                out.println("rank 0's output stopped: " + e.getMessage());
            }
        }, "rank-0-output");
        t.setDaemon(true);
        t.start();
        return t;
    }

    /** Waits until every rank has ended; the first to fail stops the others and names itself. */
    private static void waitForAll(List<Process> ranks, Path logs) throws InterruptedException, IOException {
        while (true) {
            boolean running = false;
            for (int r = 0; r < ranks.size(); r++) {
                Process p = ranks.get(r);
                if (p.isAlive()) {
                    running = true;
                } else if (p.exitValue() != 0) {
                    for (Process other : ranks) other.destroyForcibly();
                    throw new IllegalStateException("rank " + r + " of " + ranks.size() + " exited with code " + p.exitValue() + ": "
                            + lastLine(logs.resolve("rank-" + r + ".log")) + " (every rank's output is in " + logs + ")");
                }
            }
            if (!running) return;
            Thread.sleep(100);
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
