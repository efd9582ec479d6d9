package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.config.JobConfig;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A cluster on loopback: a coordinator and four worker JVMs on the CPU. A dp 2 × pp 2 job submitted over REST
 * runs a rank on each worker; one worker is killed (SIGKILL) mid-run; the job stops everywhere, waits for a
 * replacement, resumes from its latest checkpoint on the three left with dp reduced to 1, and finishes with the
 * parameters of a run that was never interrupted (F64). A bad job is refused at submission with strata train's
 * line, a job asking for more ranks than the cluster has says what it waits for and fails after its wait timeout,
 * and a request without the token gets 401. Every process started is stopped, also on failure.
 */
class ClusterTest {
    static final String TOKEN = "cluster-test-token";
    static final ObjectMapper JSON = new ObjectMapper();
    final List<Process> processes = new ArrayList<>();
    final HttpClient http = HttpClient.newHttpClient();
    String api;

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    Process start(Path log, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xss8m",
                "--add-modules", "jdk.incubator.vector", "-cp", System.getProperty("java.class.path"), "dev.strata.trainer.cli.Main"));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("STRATA_TOKEN", TOKEN);
        Process p = pb.start();
        processes.add(p);
        return p;
    }

    JsonNode call(String method, String path, Object body, String token) throws Exception {
        var b = HttpRequest.newBuilder(URI.create(api + path));
        if (token != null) b.header("Authorization", "Bearer " + token);
        b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body)));
        HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
        JsonNode n = JSON.readTree(r.body());
        ((com.fasterxml.jackson.databind.node.ObjectNode) (n.isObject() ? n : JSON.createObjectNode())).put("_status", r.statusCode());
        return n.isObject() ? n : JSON.createObjectNode().put("_status", r.statusCode()).set("list", n);
    }

    /** The nodes the coordinator knows; 0 while its REST API is not up yet. */
    int nodes() throws Exception {
        try {
            return call("GET", "/api/nodes", null, TOKEN).path("nodes").size();
        } catch (java.net.ConnectException | java.net.http.HttpConnectTimeoutException e) {
            return 0;
        }
    }

    JsonNode await(String job, Predicate<JsonNode> done, long seconds, String what) throws Exception {
        long until = System.nanoTime() + seconds * 1_000_000_000L;
        JsonNode j = null;
        while (System.nanoTime() < until) {
            j = call("GET", "/api/jobs/" + job, null, TOKEN);
            if (done.test(j)) return j;
            Thread.sleep(300);
        }
        throw new AssertionError(what + " within " + seconds + " s; the job is " + j);
    }

    /**
     * The dashboard in headless Chromium (Debian's chromium and chromium-driver; .ci/run installs them): the nodes,
     * the job with its restart, and its loss curve drawn; a screenshot for docs/.
     */
    void dashboard(Path dir, String id) throws Exception {
        if (!Files.exists(Path.of("/usr/bin/chromedriver"))) {
            System.out.println("SKIPPED the dashboard in a browser: no /usr/bin/chromedriver (apt-get install chromium chromium-driver)");
            return;
        }
        var options = new org.openqa.selenium.chrome.ChromeOptions().setBinary("/usr/bin/chromium")
                .addArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900", "--user-data-dir=" + dir.resolve("chromium"));
        var service = new org.openqa.selenium.chrome.ChromeDriverService.Builder().usingDriverExecutable(new java.io.File("/usr/bin/chromedriver")).build();
        var browser = new org.openqa.selenium.chrome.ChromeDriver(service, options);
        try {
            browser.get(api + "/#token=" + TOKEN);
            long until = System.nanoTime() + 30_000_000_000L;
            while (browser.findElements(org.openqa.selenium.By.cssSelector("#loss-path")).isEmpty()) {
                assertTrue(System.nanoTime() < until, "the dashboard drew a loss curve: " + browser.getPageSource());
                Thread.sleep(250);
            }
            String page = browser.findElement(org.openqa.selenium.By.tagName("body")).getText();
            assertTrue(page.contains(id) && page.contains("succeeded") && page.contains("dp 1 instead of 2"), page);
            assertEquals(3, browser.findElements(org.openqa.selenium.By.cssSelector("#nodes tbody tr")).size(), "the three nodes left: " + page);
            String d = browser.findElement(org.openqa.selenium.By.cssSelector("#loss-path")).getAttribute("d");
            assertTrue(d.split("L").length >= 20, "the loss curve has a point a step: " + d);
            byte[] png = ((org.openqa.selenium.TakesScreenshot) browser).getScreenshotAs(org.openqa.selenium.OutputType.BYTES);
            Path shot = Path.of("target", "cluster-dashboard.png");
            Files.write(shot, png);
            System.out.println("dashboard screenshot: " + shot.toAbsolutePath() + " (" + png.length + " bytes)");
            var noToken = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(api + "/api/openapi.json")).build(), HttpResponse.BodyHandlers.ofString());
            assertTrue(noToken.statusCode() == 200 && JSON.readTree(noToken.body()).path("paths").has("/api/jobs"), "the OpenAPI document: " + noToken.body());
        } finally {
            browser.quit();
        }
    }

    /** The coordinator's command line: its ports, short failure detection and replacement wait, its job database, and extra. */
    static String[] coordinator(Path dir, int port, int httpPort, String... extra) {
        List<String> args = new ArrayList<>(List.of("cluster", "coordinator", "--port", "" + port, "--http", "" + httpPort, "--failure-detection", "3s",
                "--wait-for-replacement", "3s", "--first-port", "" + (32000 + (int) (ProcessHandle.current().pid() % 20_000)),
                "--db", "jdbc:h2:file:" + dir.resolve("coordinator-db").resolve("jobs")));
        args.addAll(List.of(extra));
        return args.toArray(String[]::new);
    }

    /** Four workers w0..w3 joined to the coordinator at port (with extra options), once it lists them. */
    List<Process> workers(Path dir, int port, String... extra) throws Exception {
        List<Process> workers = new ArrayList<>();
        for (int w = 0; w < 4; w++) {
            List<String> args = new ArrayList<>(List.of("cluster", "worker", "--join", "127.0.0.1:" + port, "--name", "w" + w,
                    "--work-dir", dir.resolve("work").toString(), "--failure-detection", "3s"));
            args.addAll(List.of(extra));
            workers.add(start(dir.resolve("worker-" + w + ".log"), args.toArray(String[]::new)));
        }
        awaitNodes(dir.resolve("coordinator.log"), "four workers joined");
        return workers;
    }

    /** Until the coordinator lists four nodes (two minutes at most; its log in the failure). */
    void awaitNodes(Path coordinatorLog, String what) throws Exception {
        long until = System.nanoTime() + 120_000_000_000L;
        while (nodes() < 4) {
            assertTrue(System.nanoTime() < until, what + ": " + Files.readString(coordinatorLog));
            Thread.sleep(500);
        }
    }

    /** The dp 2 × pp 2 Llama job both tests submit, with a checkpoint every 4 steps. */
    static JobConfig job(Path data, Path runDir, int steps) {
        return PipelineParallelTest.job(data, runDir, "llama", 1, 2, 2, 0, "1f1b", false)
                .withOverrides("training.steps = " + steps + "\ncheckpoint { every = 4, keep_last = 10 }\nlog.every = 1");
    }

    /** The job's final parameters against one process that trained it without a stop (F64): the worst relative difference. */
    static double againstUninterrupted(JobConfig job, Path dir, Path runDir) throws Exception {
        var straight = new Trainer(job.withOverrides("run_dir = \"" + dir.resolve("straight") + "\"\nparallel { dp = 1, pp = 1, tp = 1 }\ntraining.batch_size = 4"),
                TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        var x = Checkpointer.load(new LocalStorage(), straight.checkpoint()).model();
        var y = Checkpointer.load(new LocalStorage(), Checkpointer.ofRun(new LocalStorage(), runDir.toString(), 1).latest().orElseThrow()).model();
        double worst = 0;
        for (var e : x.entrySet()) {
            double[] u = e.getValue().toDoubles(), v = y.get(e.getKey()).toDoubles();
            for (int i = 0; i < u.length; i++) worst = Math.max(worst, Math.abs(u[i] - v[i]) / Math.max(1e-3, Math.abs(u[i])));
        }
        assertEquals(TrainerTest.losses(dir.resolve("straight")).size(), TrainerTest.losses(runDir).size(), "one record per step");
        return worst;
    }

    void stopAll() throws InterruptedException {
        for (Process p : processes) p.descendants().forEach(ProcessHandle::destroyForcibly);
        for (Process p : processes) p.destroyForcibly();
        for (Process p : processes) p.waitFor(20, TimeUnit.SECONDS);
    }

    @Test
    void aJobSurvivesALostWorker(@TempDir Path dir) throws Exception {
        Path data = dir.resolve("data");
        TrainerTest.writeData(data);
        int port = freePort(), httpPort = freePort();
        api = "http://127.0.0.1:" + httpPort;
        try {
            start(dir.resolve("coordinator.log"), coordinator(dir, port, httpPort));
            List<Process> workers = workers(dir, port);
            assertEquals(401, call("GET", "/api/jobs", null, null).path("_status").asInt(), "no token");
            assertEquals(401, call("GET", "/api/jobs", null, "wrong").path("_status").asInt(), "a wrong token");

            JobConfig job = job(data, dir.resolve("run"), 24);
            JsonNode submitted = call("POST", "/api/jobs", Map.of("job", job.toJson(), "source", "cluster-job.conf"), TOKEN);
            assertEquals(201, submitted.path("_status").asInt(), submitted.toString());
            String id = submitted.path("id").asText();
            JsonNode running = await(id, j -> j.path("step").asLong() >= 6, 180, "the job reached step 6");
            int victim = -1;
            for (int r = 1; r < 4; r++) if (!running.path("nodes").get(r).asText().equals(running.path("nodes").get(0).asText())) victim = r;
            String node = running.path("nodes").get(victim).asText();
            workers.get(Integer.parseInt(node.substring(1))).destroyForcibly(); // kill -9 of the worker holding a rank other than 0
            JsonNode end = await(id, j -> !List.of("queued", "starting", "running", "restarting").contains(j.path("state").asText()), 300, "the job ended");
            assertEquals("succeeded", end.path("state").asText(), end + "\n" + Files.readString(dir.resolve("coordinator.log")));
            assertEquals(1, end.path("restarts").asInt());
            assertTrue(end.path("reason").asText().contains("node " + node + " lost") && end.path("reason").asText().contains("dp 1 instead of 2"), end.toString());

            double worst = againstUninterrupted(job, dir, dir.resolve("run"));
            System.out.printf("cluster run with a lost worker against one uninterrupted process: worst parameter difference %.2e%n", worst);
            assertTrue(worst < 1e-10, "parameters differ by " + worst);

            dashboard(dir, id);

            // refusals
            JsonNode bad = call("POST", "/api/jobs", Map.of("job", job.withOverrides("parallel.tp = 3").toJson(), "source", "bad.conf"), TOKEN);
            assertEquals(400, bad.path("_status").asInt());
            assertTrue(bad.path("error").asText().contains("parallel.tp = 3 does not divide model.n_heads"), bad.toString());
            JsonNode big = call("POST", "/api/jobs", Map.of("job", job.withOverrides("run_dir = \"" + dir.resolve("big") + "\"\nparallel.dp = 4").toJson(),
                    "source", "big.conf", "waitTimeoutSeconds", 4), TOKEN);
            JsonNode waiting = call("GET", "/api/jobs/" + big.path("id").asText(), null, TOKEN);
            assertTrue(waiting.path("waitingFor").asText().contains("8 ranks"), waiting.toString());
            JsonNode failed = await(big.path("id").asText(), j -> j.path("state").asText().equals("failed"), 30, "the job too big failed after its wait");
            assertTrue(failed.path("reason").asText().startsWith("waited 4 s for 8 ranks"), failed.toString());
        } finally {
            stopAll();
        }
    }

    /** A key pair for every node and a trust store with its certificate, made with the JDK's keytool. */
    static String[] tlsOptions(Path dir) throws Exception {
        Path keytool = Path.of(System.getProperty("java.home"), "bin", "keytool"), ks = dir.resolve("node.p12"), ts = dir.resolve("trust.p12"), cert = dir.resolve("node.crt");
        for (List<String> cmd : List.of(
                List.of("-genkeypair", "-alias", "node", "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=strata-node", "-validity", "2",
                        "-keystore", ks.toString(), "-storetype", "PKCS12", "-storepass", "tls-test-pass"),
                List.of("-exportcert", "-alias", "node", "-keystore", ks.toString(), "-storepass", "tls-test-pass", "-file", cert.toString()),
                List.of("-importcert", "-noprompt", "-alias", "node", "-file", cert.toString(), "-keystore", ts.toString(), "-storetype", "PKCS12", "-storepass", "tls-test-pass"))) {
            List<String> c = new ArrayList<>(List.of(keytool.toString()));
            c.addAll(cmd);
            Process p = new ProcessBuilder(c).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes());
            assertTrue(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0, "keytool " + cmd + ": " + out);
        }
        Files.writeString(dir.resolve("tls-password"), "tls-test-pass\n");
        return new String[] {"--tls-keystore", ks.toString(), "--tls-truststore", ts.toString(), "--tls-password-file", dir.resolve("tls-password").toString()};
    }

    static long lines(Path file) throws IOException { return Files.exists(file) ? Files.readAllLines(file).size() : 0; }

    /**
     * Remoting over TLS, and the coordinator killed (SIGKILL) mid-run: the ranks train on without it; a coordinator
     * started again on its database rejoins the workers, finds the job running and sees it finish, with no restart,
     * the parameters of an uninterrupted run and a loss curve without a gap; a worker without TLS never gets in.
     */
    @Test
    void aJobRunsOnWhileTheCoordinatorRestarts(@TempDir Path dir) throws Exception {
        Path data = dir.resolve("data");
        TrainerTest.writeData(data);
        int port = freePort(), httpPort = freePort();
        api = "http://127.0.0.1:" + httpPort;
        String[] tls = tlsOptions(dir);
        try {
            Process coordinator = start(dir.resolve("coordinator.log"), coordinator(dir, port, httpPort, tls));
            workers(dir, port, tls);
            start(dir.resolve("worker-plain.log"), "cluster", "worker", "--join", "127.0.0.1:" + port, "--name", "plain", "--work-dir", dir.resolve("work").toString());

            JobConfig job = job(data, dir.resolve("run"), 60);
            JsonNode submitted = call("POST", "/api/jobs", Map.of("job", job.toJson(), "source", "cluster-job.conf"), TOKEN);
            String id = submitted.path("id").asText();
            await(id, j -> j.path("step").asLong() >= 4, 180, "the job reached step 4");
            coordinator.destroyForcibly();
            assertTrue(coordinator.waitFor(20, TimeUnit.SECONDS));
            Path metrics = dir.resolve("run").resolve("metrics.jsonl");
            long at = lines(metrics), until = System.nanoTime() + 60_000_000_000L;
            while (lines(metrics) < at + 2) {
                assertTrue(System.nanoTime() < until, "the ranks trained on without the coordinator: metrics stayed at " + lines(metrics) + " lines");
                Thread.sleep(250);
            }

            start(dir.resolve("coordinator-again.log"), coordinator(dir, port, httpPort, tls));
            awaitNodes(dir.resolve("coordinator-again.log"), "the workers rejoined the restarted coordinator");
            JsonNode found = await(id, j -> j.path("waitingFor").asText().isEmpty(), 120, "the restarted coordinator found the job's ranks");
            System.out.println("after the coordinator's restart the job is " + found.path("state").asText() + " at step " + found.path("step").asLong()
                    + ", ranks " + found.path("rankStates"));
            JsonNode end = await(id, j -> List.of("succeeded", "failed", "cancelled").contains(j.path("state").asText()), 300, "the job ended");
            String log = Files.readString(dir.resolve("coordinator-again.log"));
            assertEquals("succeeded", end.path("state").asText(), end + "\n" + log);
            assertEquals(0, end.path("restarts").asInt(), "the job ran on, not restarted: " + end);
            assertTrue(log.contains(id + ": found attempt 0 again"), log);
            // rank 0's node passes on what it trained while the coordinator was away within a report or two of being asked
            JsonNode curve = call("GET", "/api/jobs/" + id + "/curve", null, TOKEN);
            for (long by = System.nanoTime() + 30_000_000_000L; curve.path("steps").size() < 60 && System.nanoTime() < by; Thread.sleep(250))
                curve = call("GET", "/api/jobs/" + id + "/curve", null, TOKEN);
            assertEquals(60, curve.path("steps").size(), "a point a step, those trained while the coordinator was away too: " + curve.path("steps"));
            List<String> names = new ArrayList<>();
            call("GET", "/api/nodes", null, TOKEN).path("nodes").forEach(n -> names.add(n.path("name").asText()));
            assertEquals(List.of("w0", "w1", "w2", "w3"), names.stream().sorted().toList(), "a worker without TLS stays out");

            double worst = againstUninterrupted(job, dir, dir.resolve("run"));
            System.out.printf("cluster run through a coordinator restart against one uninterrupted process: worst parameter difference %.2e%n", worst);
            assertTrue(worst < 1e-10, "parameters differ by " + worst);
        } finally {
            stopAll();
        }
    }
}
