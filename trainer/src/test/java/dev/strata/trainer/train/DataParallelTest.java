package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.config.JobConfig;
import dev.strata.runtime.Tensor;
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
 * grad_accum_steps), 10 steps in F64 give the same losses within 1e-12 and the same weights within 1e-10.
 */
class DataParallelTest {
    @TempDir static Path data;

    @BeforeAll
    static void writeData() throws Exception { TrainerTest.writeData(data); }

    static JobConfig job(Path runDir, String family, int dp, int batch, int accum) {
        return TrainerTest.job(runDir, data, family, 10).withOverrides("""
                dtype = f64
                training { batch_size = %d, grad_accum_steps = %d }
                parallel { dp = %d, timeout = 60s }
                eval.every = 0
                """.formatted(batch, accum, dp));
    }

    @ParameterizedTest
    @CsvSource({"gpt2, 2, 1", "gpt2, 4, 2", "llama, 2, 2", "llama, 4, 1"})
    void ranksEqualOneProcessWithTheWholeBatch(String family, int dp, int accum, @TempDir Path runs) throws Exception {
        int global = 4;
        var single = new Trainer(job(runs.resolve("single"), family, 1, global, accum), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        var parallel = new Trainer(job(runs.resolve("dp"), family, dp, global / dp, accum), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        List<Double> a = TrainerTest.losses(runs.resolve("single")), b = TrainerTest.losses(runs.resolve("dp"));
        assertEquals(10, a.size());
        assertEquals(a.size(), b.size());
        double worstLoss = 0, worstWeight = 0;
        for (int i = 0; i < a.size(); i++) worstLoss = Math.max(worstLoss, Math.abs(a.get(i) - b.get(i)) / Math.abs(a.get(i)));
        Map<String, Parameter> ps = single.model().parameters(), pd = parallel.model().parameters();
        for (var e : ps.entrySet()) {
            double[] x = values(e.getValue().value()), y = values(pd.get(e.getKey()).value());
            for (int i = 0; i < x.length; i++) worstWeight = Math.max(worstWeight, Math.abs(x[i] - y[i]) / Math.max(1e-3, Math.abs(x[i])));
        }
        System.out.printf("dp=%d accum=%d %s: worst loss difference %.2e, worst weight difference %.2e%n", dp, accum, family, worstLoss, worstWeight);
        assertTrue(worstLoss < 1e-12, "losses: " + a + " vs " + b);
        assertTrue(worstWeight < 1e-10, "weights differ by " + worstWeight);
        assertTrue(a.get(9) < a.get(0), "it trains: " + a);
        // A data-parallel run resumes at another dp with the same global batch and goes on as the single run did.
        var resumed = new Trainer(job(runs.resolve("dp"), family, 1, global, accum).withOverrides("training.steps = 12\ncheckpoint.every = 0"),
                TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0);
        assertEquals(12, resumed.step());
    }

    static double[] values(Tensor t) { return t.backend().toDoubles(t); }
}
