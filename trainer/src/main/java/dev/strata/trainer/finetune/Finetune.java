package dev.strata.trainer.finetune;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.config.JobConfig;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.train.MemoryPlan;
import dev.strata.trainer.train.Models;
import dev.strata.trainer.train.RunDirectory;
import dev.strata.trainer.train.Trainer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * {@code strata finetune}: a Hugging Face model and JSONL examples in, a Hugging Face model out. It reads and fits
 * the data, works out the steps from the epochs, picks the micro-batch, activation checkpointing and optimizer
 * offload that fit the GPU (any the user set stays), prints that plan, trains through {@link Trainer} with a
 * checkpoint each epoch, and writes the output directory.
 */
public final class Finetune {
    private Finetune() {}

    /** Sequences a step when neither --batch nor --accum says otherwise, as axolotl's and TRL's examples use. */
    static final int GLOBAL_BATCH = 16;
    /** Tokens a row holds when --seq-len is not given (or the model's limit, if lower). */
    static final int DEFAULT_SEQ_LEN = 1024;

    /** The settings the user chose (keys as in a job file) and what the command was asked to do with OUT. */
    public record Request(JobConfig job, Set<String> chosen, int epochs, Path out, boolean resume, boolean overwrite, long exitAfter) {}

    public record Result(Trainer.Result training, Path out, JobConfig job) {}

    public static Result run(Request req, PrintStream console) throws IOException {
        JobConfig job = req.job();
        Path base = Path.of(job.model().initFrom());
        ModelConfig cfg = Models.modelConfig(job); // an unsupported architecture or a missing config.json stops here
        if (job.finetune().saveAdapter() && cfg.family() != ModelConfig.Family.LLAMA)
            throw new IllegalArgumentException("--save-adapter writes a PEFT adapter for llama models; " + base + " is " + cfg.family().name().toLowerCase(Locale.ROOT)
                    + " (GPT-2 fuses q, k and v into one layer); leave it out to save merged weights");
        if (!req.chosen().contains("training.seq_len")) job = job.withOverrides("training.seq_len = " + Math.min(DEFAULT_SEQ_LEN, cfg.maxSeqLen()));
        var tr = job.training();
        if (tr.seqLen() > cfg.maxSeqLen())
            throw new IllegalArgumentException("--seq-len " + tr.seqLen() + " exceeds the model's max_position_embeddings " + cfg.maxSeqLen());
        CudaBackend.Properties gpu = Models.onGpu(job.backend()) ? CudaBackend.properties(0) : null; // null: the CPU
        job = fitToDevice(job, cfg, req.chosen(), gpu);
        FinetuneData data = FinetuneData.read(job, job.training().batchSize());
        job = schedule(job, req.chosen(), req.epochs(), data.train().windows(), data.eval() == null ? 0 : data.eval().windows());
        FinetuneOutput out = FinetuneOutput.prepare(req.out(), req.resume(), req.overwrite());
        if (req.resume()) checkUnfinished(out, job.training().steps());
        printPlan(console, job, cfg, data, gpu, req.out());

        var mode = req.resume() ? RunDirectory.Mode.RESUME : RunDirectory.Mode.FRESH;
        Trainer.Data rows = new Trainer.Data(data.train(), data.eval(), job.finetune().data());
        Trainer.Result r = new Trainer(job, console, rows).run(mode, req.exitAfter());
        if (r.step() < job.training().steps()) {
            console.printf(Locale.ROOT, "stopped at step %d of %d: continue with --resume; %s holds no model yet%n", r.step(), job.training().steps(), req.out());
            return new Result(r, req.out(), job);
        }
        Map<String, Object> hfConfig = readJson(base.resolve("config.json"));
        out.write(r.model(), hfConfig, base, job.lora(), job.finetune().saveAdapter(), summary(job, data, r, out.runDir()));
        console.printf(Locale.ROOT, "wrote %s: %s, tokenizer, %s%n", req.out(), job.finetune().saveAdapter() ? "PEFT adapter" : "merged weights", FinetuneOutput.SUMMARY);
        return new Result(r, req.out(), job);
    }

    /** --resume of a run that already reached its last step: there is nothing to continue. */
    private static void checkUnfinished(FinetuneOutput out, long steps) throws IOException {
        var fs = new LocalStorage();
        var latest = Checkpointer.ofRun(fs, out.runDir().toString(), 1).latest();
        long at = latest.isEmpty() ? 0 : Checkpointer.readManifest(fs, latest.get()).step();
        if (at >= steps)
            throw new IllegalArgumentException("--resume: the fine-tune in " + out.runDir().getParent() + " finished at step " + at + " of " + steps
                    + "; raise --epochs or --steps to train on, or start again with --overwrite");
    }

    /**
     * The micro-batch, activation checkpointing and offload the user left open, chosen as the fastest that fits
     * the GPU: no recomputation before some, bigger micro-batches before smaller, the optimizer on the device before
     * offloaded. The step's sequences (micro-batch × accumulation) stay as asked, GLOBAL_BATCH if not.
     */
    static JobConfig fitToDevice(JobConfig job, ModelConfig cfg, Set<String> chosen, CudaBackend.Properties gpu) {
        var tr = job.training();
        boolean bChosen = chosen.contains("training.batch_size"), accumChosen = chosen.contains("training.grad_accum_steps");
        int global = bChosen && accumChosen ? tr.batchSize() * tr.gradAccumSteps() : bChosen ? Math.max(tr.batchSize(), GLOBAL_BATCH) : GLOBAL_BATCH;
        List<Integer> micro = new ArrayList<>();
        if (bChosen) micro.add(tr.batchSize());
        else if (gpu == null) micro.add(accumChosen ? 4 : Math.min(global, 4)); // on the CPU nothing is short of memory: a modest micro-batch
        else for (int b = Math.min(global, 16); b >= 1; b /= 2) if (accumChosen || global % b == 0) micro.add(b);
        List<String> recompute = gpu == null || chosen.contains("training.activation_checkpointing") ? List.of(tr.activationCheckpointing())
                : List.of("none", "selective", "full");
        List<String> offload = gpu == null || chosen.contains("offload.optimizer") ? List.of(job.offload().optimizer()) : List.of("none", "cpu");
        long budget = gpu == null ? Long.MAX_VALUE : (long) (gpu.totalMemory() * dev.strata.trainer.train.MemoryPlan.GPU_SHARE);
        JobConfig smallest = null;
        for (String o : offload)
            for (String ac : recompute)
                for (int b : micro) {
                    int accum = accumChosen ? tr.gradAccumSteps() : Math.max(1, global / b);
                    JobConfig at = job.withOverrides(String.format(Locale.ROOT, "training { batch_size = %d, grad_accum_steps = %d, activation_checkpointing = %s }\noffload.optimizer = %s",
                            b, accum, ac, o));
                    if (MemoryPlan.deviceBytes(at, cfg) <= budget) return at;
                    smallest = at;
                }
        throw new IllegalArgumentException(String.format(Locale.ROOT, "%s does not fit %s (%.1f GiB): even the smallest micro-batch with full recomputation and the optimizer "
                + "offloaded needs %.1f GiB; use LoRA (leave out --full), a shorter --seq-len, or a larger GPU", job.model().initFrom(), gpu.name(),
                gpu.totalMemory() / GIB, MemoryPlan.deviceBytes(smallest, cfg) / GIB));
    }

    /**
     * training.steps from the epochs (unless --steps), a checkpoint each epoch (all kept), warm-up over 3% of the
     * steps, five evaluations over every evaluation example (evalRows: whole batches of them).
     */
    static JobConfig schedule(JobConfig job, Set<String> chosen, int epochs, long rows, long evalRows) {
        var tr = job.training();
        int perStep = tr.batchSize() * tr.gradAccumSteps();
        long perEpoch = Math.max(1, (rows + perStep - 1) / perStep);
        long steps = chosen.contains("training.steps") ? tr.steps() : perEpoch * epochs;
        StringBuilder s = new StringBuilder(String.format(Locale.ROOT, "training.steps = %d%n", steps));
        if (!chosen.contains("checkpoint.every")) s.append(String.format(Locale.ROOT, "checkpoint.every = %d%n", Math.min(perEpoch, steps)));
        if (!chosen.contains("checkpoint.keep_every")) s.append(String.format(Locale.ROOT, "checkpoint.keep_every = %d%n", perEpoch)); // every epoch's stays
        if (!chosen.contains("training.warmup_steps")) s.append(String.format(Locale.ROOT, "training.warmup_steps = %d%n", (long) Math.ceil(steps * 0.03)));
        if (!chosen.contains("eval.every")) s.append(String.format(Locale.ROOT, "eval.every = %d%n", Math.max(1, steps / 5)));
        if (!chosen.contains("eval.batches") && evalRows > 0) s.append(String.format(Locale.ROOT, "eval.batches = %d%n", evalRows / tr.batchSize())); // all of them
        return job.withOverrides(s.toString());
    }

    private static final double GIB = 1L << 30;

    private static void printPlan(PrintStream console, JobConfig job, ModelConfig cfg, FinetuneData data, CudaBackend.Properties gpu, Path out) {
        var tr = job.training();
        var lora = job.lora();
        console.printf(Locale.ROOT, "finetune: %s, %,d parameters, from %s; %s%n", cfg.family().name().toLowerCase(Locale.ROOT), cfg.parameterCount(),
                job.model().initFrom(), lora.enabled() ? String.format(Locale.ROOT, "LoRA rank %d, alpha %s, on %s", lora.rank(), fmt(lora.alpha()), String.join(", ", lora.targets()))
                        : "full fine-tune");
        data.report().forEach(line -> console.println("data: " + line));
        int perStep = tr.batchSize() * tr.gradAccumSteps();
        console.printf(Locale.ROOT, "steps: %d (%.2f epochs), batch %d x %d accum = %d %s a step, seq_len %d, lr %s (warm-up %d steps, cosine to %s), %s%n",
                tr.steps(), (double) tr.steps() * perStep / data.train().windows(), tr.batchSize(), tr.gradAccumSteps(), perStep, data.train().packed() ? "packed rows" : "examples", tr.seqLen(),
                fmt(tr.lr()), tr.warmupSteps(), fmt(tr.minLr()), data.eval() == null ? "no evaluation (no --eval data)"
                        : "eval every " + job.eval().every() + " steps on " + data.eval().examples() + " examples");
        String device = gpu != null
                ? String.format(Locale.ROOT, "%.1f GiB expected of %.1f GiB on %s", MemoryPlan.deviceBytes(job, cfg) / GIB, gpu.totalMemory() / GIB, gpu.name())
                : "CPU";
        console.printf(Locale.ROOT, "memory: activation checkpointing %s, optimizer offload %s, %s linears, %s: %s%n", tr.activationCheckpointing(),
                job.offload().optimizer(), job.precision().linear().equals("fp8") ? "FP8" : "dense", job.dtype(), device);
        console.printf(Locale.ROOT, "output: %s (%s), a checkpoint every %d steps in %s%n", out, job.finetune().saveAdapter() ? "PEFT adapter" : "merged weights",
                job.checkpoint().every(), job.runDir());
    }

    private static String fmt(double v) { return v == 0 ? "0" : String.format(Locale.ROOT, v < 0.01 ? "%.2e" : "%.3g", v); }

    /** What training_summary.json holds: the base, the data, the settings, and every logged loss. */
    private static Map<String, Object> summary(JobConfig job, FinetuneData data, Trainer.Result r, Path runDir) throws IOException {
        List<Map<String, Object>> train = new ArrayList<>(), eval = new ArrayList<>();
        Path metrics = runDir.resolve("metrics.jsonl");
        ObjectMapper json = new ObjectMapper();
        if (Files.isRegularFile(metrics))
            for (String line : Files.readAllLines(metrics)) {
                @SuppressWarnings("unchecked") Map<String, Object> m = json.readValue(line, Map.class);
                if (m.containsKey("loss") && !m.containsKey("skipped")) train.add(Map.of("step", m.get("step"), "loss", m.get("loss")));
                if (m.containsKey("val_loss")) eval.add(Map.of("step", m.get("step"), "loss", m.get("val_loss")));
            }
        var tr = job.training();
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("base_model", Path.of(job.model().initFrom()).toAbsolutePath().toString());
        s.put("method", job.lora().enabled() ? "lora" : "full");
        if (job.lora().enabled()) s.put("lora", Map.of("rank", job.lora().rank(), "alpha", job.lora().alpha(), "targets", job.lora().targets()));
        s.put("saved", job.finetune().saveAdapter() ? "adapter" : "merged");
        s.put("data", Map.of("train", job.finetune().data(), "eval", job.finetune().evalData(), "kind", data.kind().label,
                "train_examples", data.trainExamples(), "trained_tokens", data.trainedTokens(), "packed", data.train().packed(), "report", data.report()));
        s.put("training", Map.of("steps", r.step(), "batch_size", tr.batchSize(), "grad_accum_steps", tr.gradAccumSteps(), "seq_len", tr.seqLen(),
                "lr", tr.lr(), "activation_checkpointing", tr.activationCheckpointing(), "offload", job.offload().optimizer(), "linear", job.precision().linear(),
                "dtype", job.dtype()));
        s.put("final_train_loss", r.trainLoss());
        s.put("final_eval_loss", Double.isNaN(r.valLoss()) ? null : r.valLoss());
        s.put("tokens_per_s", r.tokensPerSecond());
        if (r.model().backend() instanceof CudaBackend cuda) s.put("peak_gib", cuda.allocator().stats().peakAllocatedBytes() / GIB);
        s.put("wall_s", r.wallSeconds());
        s.put("train_losses", train);
        s.put("eval_losses", eval);
        return s;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> readJson(Path file) throws IOException {
        return new ObjectMapper().readValue(file.toFile(), Map.class);
    }
}
