package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.config.JobConfig;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.Parameter;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * N data-parallel ranks equal one process with the whole batch: with the same global batch (dp × batch_size ×
 * grad_accum_steps), 10 steps in F64 give the same losses within 1e-12 and the same weights within 1e-10, at every
 * ZeRO level; and a checkpoint of a sharded run holds whole tensors, so it resumes at another dp.
 */
class DataParallelTest {
    @TempDir static Path data;

    @BeforeAll
    static void writeData() throws Exception { TrainerTest.writeData(data); }

    static JobConfig job(Path runDir, String family, int dp, int zero, int batch, int accum) {
        return TrainerTest.job(runDir, data, family, 10).withOverrides("""
                dtype = f64
                training { batch_size = %d, grad_accum_steps = %d }
                parallel { dp = %d, zero = %d, bucket_mb = 0.02, launcher = threads, timeout = 60s }
                eval.every = 0
                """.formatted(batch, accum, dp, zero));
    }

    /** The whole matrix: dp ∈ {2, 4} × ZeRO ∈ {0, 1, 2} × accumulation ∈ {1, 2} against dp = 1, threads as ranks. */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"gpt2", "llama"})
    void everyLayoutEqualsOneProcessWithTheWholeBatch(String family, @TempDir Path runs) throws Exception {
        int global = 4;
        for (int accum : new int[] {1, 2}) {
            Path one = runs.resolve("single-" + accum);
            var single = new Trainer(job(one, family, 1, 0, global, accum), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
            for (int dp : new int[] {2, 4})
                for (int zero = 0; zero <= 2; zero++) {
                    Path dir = runs.resolve("dp" + dp + "-zero" + zero + "-accum" + accum);
                    var parallel = new Trainer(job(dir, family, dp, zero, global / dp, accum), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
                    assertSameRun(one, single, dir, parallel, String.format("dp=%d zero=%d accum=%d %s", dp, zero, accum, family));
                }
        }
    }

    /** Losses within 1e-12 and weights within 1e-10 (relative) of the single run's; it trains. */
    static void assertSameRun(Path oneDir, Trainer.Result one, Path otherDir, Trainer.Result other, String layout) throws Exception {
        List<Double> a = TrainerTest.losses(oneDir), b = TrainerTest.losses(otherDir);
        assertEquals(10, a.size(), layout);
        assertEquals(a.size(), b.size(), layout);
        double worstLoss = 0, worstWeight = 0;
        for (int i = 0; i < a.size(); i++) worstLoss = Math.max(worstLoss, Math.abs(a.get(i) - b.get(i)) / Math.abs(a.get(i)));
        Map<String, Parameter> ps = one.model().parameters(), pd = other.model().parameters();
        for (var e : ps.entrySet()) {
            double[] x = values(e.getValue().value()), y = values(pd.get(e.getKey()).value());
            for (int i = 0; i < x.length; i++) worstWeight = Math.max(worstWeight, Math.abs(x[i] - y[i]) / Math.max(1e-3, Math.abs(x[i])));
        }
        System.out.printf("%s: worst loss difference %.2e, worst weight difference %.2e%n", layout, worstLoss, worstWeight);
        assertTrue(worstLoss < 1e-12, layout + " losses: " + a + " vs " + b);
        assertTrue(worstWeight < 1e-10, layout + " weights differ by " + worstWeight);
        assertTrue(a.get(9) < a.get(0), "it trains: " + a);
    }

    /**
     * A sharded run's checkpoint holds the whole optimizer state, equal to the single run's, so it resumes at another
     * dp and ZeRO level and goes on as the single run does.
     */
    @ParameterizedTest
    @CsvSource({"gpt2, 2, 0, 1", "gpt2, 4, 1, 2", "llama, 2, 2, 2", "llama, 4, 2, 1"})
    void aCheckpointResumesAtAnotherDp(String family, int dp, int zero, int accum, @TempDir Path runs) throws Exception {
        int global = 4;
        var single = new Trainer(job(runs.resolve("single"), family, 1, 0, global, accum), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        var parallel = new Trainer(job(runs.resolve("dp"), family, dp, zero, global / dp, accum), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        var ckptSingle = Checkpointer.load(new LocalStorage(), single.checkpoint());
        var ckptDp = Checkpointer.load(new LocalStorage(), parallel.checkpoint());
        assertEquals(ckptSingle.optimizer().keySet(), ckptDp.optimizer().keySet());
        for (var e : ckptSingle.optimizer().entrySet()) {
            double[] x = e.getValue().toDoubles(), y = ckptDp.optimizer().get(e.getKey()).toDoubles();
            for (int i = 0; i < x.length; i++)
                assertTrue(Math.abs(x[i] - y[i]) <= 1e-9 * Math.max(1e-6, Math.abs(x[i])), e.getKey() + "[" + i + "]: " + x[i] + " vs " + y[i]);
        }
        int otherDp = dp == 2 ? 4 : 2;
        var moved = new Trainer(job(runs.resolve("dp"), family, otherDp, 2 - zero, global / otherDp, accum).withOverrides("training.steps = 12"),
                TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0);
        var straight = new Trainer(job(runs.resolve("single"), family, 1, 0, global, accum).withOverrides("training.steps = 12"),
                TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0);
        assertEquals(12, moved.step());
        List<Double> la = TrainerTest.losses(runs.resolve("single")), lb = TrainerTest.losses(runs.resolve("dp"));
        assertEquals(la.size(), lb.size());
        for (int i = 10; i < la.size(); i++) assertEquals(la.get(i), lb.get(i), 1e-12 * Math.abs(la.get(i)), "step " + (i + 1) + " after moving to dp=" + otherDp);
        assertEquals(12, straight.step());
    }

    /** Interrupted at step 5 and resumed at the same dp and ZeRO level, a run repeats the uninterrupted one bit for bit. */
    @ParameterizedTest
    @CsvSource({"gpt2, 2, 2, 2", "llama, 4, 1, 1"})
    void aResumedRunRepeatsTheUninterruptedOneBitForBit(String family, int dp, int zero, int accum, @TempDir Path runs) throws Exception {
        var straight = new Trainer(job(runs.resolve("straight"), family, dp, zero, 4 / dp, accum), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        JobConfig j = job(runs.resolve("resumed"), family, dp, zero, 4 / dp, accum);
        assertEquals(5, new Trainer(j, TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 5).step());
        var resumed = new Trainer(j, TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0);
        assertEquals(TrainerTest.losses(runs.resolve("straight")), TrainerTest.losses(runs.resolve("resumed")));
        for (var e : straight.model().parameters().entrySet())
            assertArrayEquals(values(e.getValue().value()), values(resumed.model().parameters().get(e.getKey()).value()), 0.0, e.getKey());
    }

    static double[] values(Tensor t) { return t.backend().toDoubles(t); }

    /** Under a sharded optimizer a rank's AdamW holds moments only for what it owns; together they hold each once. */
    @org.junit.jupiter.api.Test
    void zeroShardsTheOptimizerState() {
        var cfg = new dev.strata.trainer.model.ModelConfig(dev.strata.trainer.model.ModelConfig.Family.LLAMA, 70, 32, 2, 4, 2, 8, 64, 16,
                1e-5, 10000.0, false, false, false);
        var model = new dev.strata.trainer.model.Transformer(cfg, dev.strata.runtime.cpu.CpuBackend.INSTANCE, dev.strata.runtime.DType.F64);
        var comms = dev.strata.parallel.comm.InProcessCommunicator.group("dp", 3, java.time.Duration.ofSeconds(5));
        java.util.Set<String> seen = new java.util.HashSet<>();
        int total = 0;
        for (var c : comms) {
            var sync = new dev.strata.parallel.DataParallelSync(c, 1, 1 << 20);
            sync.plan(TrainingState.trainable(model));
            var opt = new AdamW(model.parameters(), new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, false), sync);
            for (String k : opt.state().keySet()) assertTrue(seen.add(k), k + " held twice");
            total += opt.state().size();
            assertTrue(opt.state().size() < 2 * model.parameters().size(), "a share, not the whole");
            opt.close();
            c.close();
        }
        assertEquals(2 * model.parameters().size(), total, "every moment held once");
    }

    /** Ranks as worker JVMs over Pekko compute what one process does, and every rank's output is in run_dir/logs. */
    @ParameterizedTest
    @CsvSource({"gpt2, 2, 1, 1", "llama, 2, 2, 2"})
    void workerProcessesEqualOneProcess(String family, int dp, int zero, int accum, @TempDir Path runs) throws Exception {
        var single = new Trainer(job(runs.resolve("single"), family, 1, 0, 4, accum), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        var out = new java.io.ByteArrayOutputStream();
        var processes = new Trainer(job(runs.resolve("procs"), family, dp, zero, 4 / dp, accum).withOverrides("parallel.launcher = processes"),
                new java.io.PrintStream(out, true)).run(RunDirectory.Mode.FRESH, 0);
        assertEquals(10, processes.step());
        assertTrue(out.toString().contains("x " + dp + " data-parallel replicas | " + dp + " ranks (processes)"), "rank 0's output on the console: " + out);
        for (int r = 0; r < dp; r++) assertTrue(java.nio.file.Files.exists(runs.resolve("procs/logs/rank-" + r + ".log")), "rank " + r + "'s log");
        List<Double> a = TrainerTest.losses(runs.resolve("single")), b = TrainerTest.losses(runs.resolve("procs"));
        assertEquals(a.size(), b.size());
        for (int i = 0; i < a.size(); i++) assertEquals(a.get(i), b.get(i), 1e-12 * Math.abs(a.get(i)), "step " + (i + 1));
        var x = Checkpointer.load(new LocalStorage(), single.checkpoint()).model();
        var y = Checkpointer.load(new LocalStorage(), processes.checkpoint()).model();
        for (var e : x.entrySet()) {
            double[] u = e.getValue().toDoubles(), v = y.get(e.getKey()).toDoubles();
            for (int i = 0; i < u.length; i++) assertEquals(u[i], v[i], 1e-10 * Math.max(1e-3, Math.abs(u[i])), e.getKey());
        }
    }

    /** A worker killed mid-run: the launcher stops the others and names it; the last checkpoint is whole. */
    @org.junit.jupiter.api.Test
    void aKilledWorkerStopsTheRunAndIsNamed(@TempDir Path runs) throws Exception {
        Path dir = runs.resolve("procs");
        JobConfig j = job(dir, "gpt2", 2, 0, 2, 1).withOverrides("parallel { launcher = processes, timeout = 5s }\ntraining.steps = 100000\ncheckpoint.every = 5");
        var failure = new java.util.concurrent.CompletableFuture<Throwable>();
        Thread run = new Thread(() -> {
            try {
                new Trainer(j, TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
                failure.complete(null);
            } catch (Throwable e) {
                failure.complete(e);
            }
        });
        run.start();
        try {
            killRankOneMidRun(dir, failure);
        } finally {
            ProcessHandle.current().descendants().forEach(ProcessHandle::destroyForcibly); // also when an assertion failed
        }
    }

    private static void killRankOneMidRun(Path dir, java.util.concurrent.CompletableFuture<Throwable> failure) throws Exception {
        Path ckpts = dir.resolve("checkpoints");
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (System.nanoTime() < deadline && !(java.nio.file.Files.exists(ckpts.resolve("latest")))) Thread.sleep(100);
        var victim = ProcessHandle.current().descendants().filter(p -> isRank(p, 1)).findFirst();
        assertTrue(victim.isPresent(), "found rank 1's process among " + ProcessHandle.current().descendants().count());
        victim.get().destroyForcibly();
        Throwable e = failure.get(60, java.util.concurrent.TimeUnit.SECONDS);
        assertTrue(e instanceof IllegalStateException && e.getMessage().contains("rank 1 of 2 exited"), String.valueOf(e));
        assertEquals(0, ProcessHandle.current().descendants().count(), "every worker ended");
        String latest = Checkpointer.ofRun(new LocalStorage(), dir.toString(), 2).latest().orElseThrow();
        Checkpointer.load(new LocalStorage(), latest); // verifies every checksum
    }

    /** Whether p is a worker of the given rank, from its command line in /proc (ProcessHandle's arguments are empty here). */
    static boolean isRank(ProcessHandle p, int rank) {
        try {
            String[] args = new String(java.nio.file.Files.readAllBytes(Path.of("/proc", "" + p.pid(), "cmdline"))).split("\0");
            List<String> list = java.util.Arrays.asList(args);
            int at = list.indexOf("--rank");
            return at >= 0 && at + 1 < list.size() && list.get(at + 1).equals("" + rank);
        } catch (java.io.IOException e) {
            return false;
        }
    }
}
