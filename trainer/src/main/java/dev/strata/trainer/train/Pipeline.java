package dev.strata.trainer.train;

import dev.strata.config.ConfigError;
import dev.strata.config.JobConfig;
import dev.strata.parallel.pipeline.PipelineRunner;
import dev.strata.parallel.pipeline.PipelineSchedule;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.nn.Parameter;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.io.PrintStream;
import java.util.Locale;

/** The trainer's side of pipeline parallelism: what a layout refuses, a stage's runner, its bubble. */
final class Pipeline {
    private Pipeline() {}

    /** Refuses, in one line, what pipeline stages cannot do (yet). */
    static void check(JobConfig job, ModelConfig cfg) {
        var p = job.parallel();
        String at = job.source() + ": parallel.pp = " + p.pp() + " ";
        Models.stage(job, cfg, 0, p.pp()); // layer counts, parallel.pp_layers
        String refusal = schedule(job).refusal(p.pp(), job.training().gradAccumSteps());
        if (refusal != null) throw new ConfigError(job.source() + ": parallel.schedule = " + refusal);
        if (p.schedule().equals("zero_bubble") && p.zero() == 2)
            throw new ConfigError(at + "with parallel.schedule = zero_bubble puts weight gradients off past the backward that ZeRO-2 reduces them in; "
                    + "use parallel.zero = 0 or 1 with it");
    }

    static PipelineSchedule schedule(JobConfig job) { return PipelineSchedule.of(job.parallel().schedule(), job.parallel().virtualStages()); }

    /** This stage's copy of the tied embedding table, which the first stage (lookup) and the last (head) both hold; else null. */
    static Parameter tiedCopy(Transformer model) {
        var stage = model.stage();
        if (!model.config().tieEmbeddings() || stage.embedding() && stage.head()) return null;
        return stage.embedding() || stage.head() ? model.parameters().get("tok_embeddings.weight") : null;
    }

    /** The stage's runner; rank 0 prints the layout and the schedule's bubble. */
    static PipelineRunner runner(JobConfig job, Transformer model, Rank rank, GradientSync sync, int b, int t, PrintStream out) {
        var p = job.parallel();
        PipelineSchedule schedule = schedule(job);
        int m = job.training().gradAccumSteps(), tp = rank.mesh().tp();
        int rows = p.sequenceParallel() ? b * t / tp : b * t;
        var s = model.stage();
        out.printf(Locale.ROOT, "pipeline: %d stages, stage %d holds layers %s%s%s | %s over %d micro-batches, bubble %.1f%% (computed)%n",
                rank.mesh().pp(), rank.stage(), s.chunks().stream().map(Object::toString).collect(java.util.stream.Collectors.joining(" and ")),
                s.embedding() ? " and the embedding" : "",
                s.head() ? " and the head" : "", schedule.configName(), m, 100 * schedule.bubble(rank.mesh().pp(), m));
        return new PipelineRunner(model, model.backend(), rank.pipeline(), schedule, sync, rows, model.config().dim(), model.precision().activations());
    }

    /** The computed bubble against the one each stage measured; rank 0 prints its own stage's. */
    static void printBubble(JobConfig job, Rank rank, PipelineRunner runner, PrintStream out) {
        var schedule = schedule(job);
        out.printf(Locale.ROOT, "pipeline bubble: %.1f%% computed, %.1f%% measured on stage %d; at most %d %s in flight there%n",
                100 * schedule.bubble(rank.mesh().pp(), job.training().gradAccumSteps()), 100 * runner.measuredBubble(), rank.stage(),
                runner.peakInFlight(), schedule.chunks() > 1 ? "chunk passes" : "micro-batches");
    }
}
