package dev.strata.trainer.train;

import dev.strata.checkpoints.BackgroundSaves;
import dev.strata.checkpoints.CheckpointReader;
import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.Manifest;
import dev.strata.checkpoints.Storage;
import dev.strata.config.JobConfig;
import dev.strata.config.TrainingSpec;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.parallel.pipeline.PipelineRunner;
import dev.strata.offload.OffloadedAdamW;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.Optimizer;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.nn.Parameter;
import dev.strata.trainer.data.BatchSampler;
import dev.strata.trainer.data.Gpt2Tokenizer;
import dev.strata.trainer.data.TokenDataset;
import dev.strata.trainer.data.Windows;
import dev.strata.trainer.model.ActivationCheckpointing;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The training loop of one host: micro-batches with gradient accumulation, AdamW with clipping on a warm-up +
 * cosine schedule, evaluation and checkpoints every N steps, metrics to the console and metrics.jsonl. A resumed run
 * continues from the latest checkpoint with the same weights, optimizer moments, data position and schedule, so its
 * losses are bit-identical to an uninterrupted run.
 */
public final class Trainer {

    public record Result(long step, double trainLoss, double valLoss, double tokensPerSecond, double wallSeconds,
                         String checkpoint, Transformer model) {}

    /** Steps with non-finite gradients are skipped (an overflow now and then); this many in a row stop the run. */
    static final int MAX_SKIPPED_IN_A_ROW = 5;

    /**
     * Rows from elsewhere than job.data's token shards: fine-tuning examples, whose loss is the mean over the
     * targets that train; {@code val} null evaluates nothing. {@code source} names the data in checkpoints.
     */
    public record Data(Windows train, Windows val, String source) {}

    private final JobConfig job;
    private final PrintStream out;
    private final Data data; // null: job.data's shards

    public Trainer(JobConfig job, PrintStream out) { this(job, out, null); }

    public Trainer(JobConfig job, PrintStream out, Data data) {
        this.job = job;
        this.out = out;
        this.data = data;
    }

    /** Trains until training.steps, or until step {@code exitAfter} (> 0) as if the job were interrupted there. */
    public Result run(RunDirectory.Mode mode, long exitAfter) throws IOException { return run(mode, exitAfter, false); }

    /** As {@link #run(RunDirectory.Mode, long)}; {@code allowChanges} resumes a run whose guarded settings changed. */
    public Result run(RunDirectory.Mode mode, long exitAfter, boolean allowChanges) throws IOException {
        var p = job.parallel();
        if (p.worldSize() == 1) return run(mode, exitAfter, allowChanges, Rank.SINGLE);
        if (data != null) throw new IllegalArgumentException(job.source() + ": fine-tuning runs on one process; set parallel.dp, tp and pp to 1");
        checkLayout(job); // here, before any rank starts
        if (p.launcher().equals("processes")) return ProcessRanks.run(job, out, mode, exitAfter, allowChanges);
        if (Models.onGpu(job.backend()))
            throw new IllegalArgumentException(job.source() + ": " + ProcessRanks.layout(job) + " on the GPU runs one worker process per GPU, "
                    + "but parallel.launcher = threads; set parallel.launcher = processes");
        return ThreadRanks.run(job, out, mode, exitAfter, allowChanges);
    }

    /** Refuses, in one line, a layout the model cannot take (heads, kv heads, layers, schedule); a cluster checks a job so at submission. */
    public static void checkLayout(JobConfig job) throws IOException {
        var p = job.parallel();
        ModelConfig model = Models.modelConfig(job);
        if (p.tp() > 1) Models.checkTensorParallel(job, model, p.tp());
        if (p.pp() > 1) Pipeline.check(job, model);
    }

    /**
     * One rank's loop. Every rank builds its part of the same model and reads the same global batches, its replica
     * taking its share of each; rank 0 alone writes the run directory and checkpoints (gathered from every rank),
     * the first replica's ranks evaluate (the replicas hold the same weights).
     */
    Result run(RunDirectory.Mode mode, long exitAfter, boolean allowChanges, Rank rank) throws IOException {
        long started = System.nanoTime();
        boolean writer = rank.writes();
        TrainingSpec tr = job.training();
        if (exitAfter < 0) throw new IllegalArgumentException("--exit-after must be a step number (1 or more), got " + exitAfter);
        Backend backend = rank.backend() != null ? rank.backend() : Models.backend(job);
        backend.deterministic(tr.deterministic());
        DType dtype = Models.dtype(job, backend);
        Windows train, val;
        if (data != null) {
            train = data.train();
            val = data.val();
        } else {
            Path dataDir = Path.of(job.data().dir());
            train = new TokenDataset(dataDir, "train", tr.seqLen());
            val = new TokenDataset(dataDir, "val", tr.seqLen());
        }

        // Whatever can refuse the job does so before the run directory is written: a fixed job then starts afresh.
        if (writer) RunDirectory.check(job, mode);
        var ck = job.checkpoint();
        Storage fs = Storage.forPath(ck.dirFor(job.runDir()));
        Checkpointer checkpoints = new Checkpointer(fs, ck.dirFor(job.runDir()), ck.keepLast(), ck.keepEvery());
        List<String> existing = writer && mode != RunDirectory.Mode.RESUME && !ck.dir().isEmpty() ? checkpoints.list() : List.of();
        if (!existing.isEmpty())
            throw new IllegalArgumentException(job.source() + ": checkpoint.dir = " + ck.dir() + " already holds checkpoints (" + existing.size()
                    + ", the newest " + existing.getLast() + "); give a new directory, resume with --resume, or remove them yourself");
        Optional<String> latest = mode == RunDirectory.Mode.RESUME ? checkpoints.latest() : Optional.empty();
        Storage source = fs; // where the checkpoint to start from lies
        if (latest.isEmpty() && !ck.resumeFrom().isEmpty()) {
            source = Storage.forPath(ck.resumeFrom());
            latest = Optional.of(resumeFrom(source, ck.resumeFrom()));
        }
        Map<String, List<Object>> changes = Map.of();
        if (latest.isPresent()) {
            Manifest m = Checkpointer.readManifest(source, latest.get());
            if (m.step() >= tr.steps())
                throw new IllegalArgumentException("the run in " + job.runDir() + " is finished: its latest checkpoint is step " + m.step()
                        + " of training.steps = " + tr.steps() + "; raise training.steps to train on, or pass --overwrite to start again");
            changes = ResumeChanges.between(m.config(), job.toMap());
            if (!changes.isEmpty() && !allowChanges)
                throw new IllegalArgumentException(job.source() + " changes settings of the run in " + job.runDir() + " since " + latest.get()
                        + ": " + ResumeChanges.describe(changes) + "; put them back, or pass --allow-changes to resume with them");
        }
        Transformer model = Models.build(job, backend, dtype, rank.tensorParallel(), rank.stage(), rank.mesh().pp());
        if (job.lora().enabled() && job.model().initFrom().isEmpty())
            throw new IllegalArgumentException(job.source() + ": lora.rank = " + job.lora().rank() + " trains adapters over a frozen base, "
                    + "but model.init_from is empty, so the base would be random; set model.init_from to a Hugging Face directory or a Strata run");
        model.checkpointActivations(ActivationCheckpointing.parse(tr.activationCheckpointing()));
        ModelConfig cfg = model.config();
        if (tr.seqLen() > cfg.maxSeqLen())
            throw new IllegalArgumentException(job.source() + ": training.seq_len " + tr.seqLen() + " exceeds the model's max_seq_len " + cfg.maxSeqLen());
        train.checkVocabulary(cfg.vocabSize());
        if (val != null) val.checkVocabulary(cfg.vocabSize());

        long step = 0;
        BatchSampler.Position position = new BatchSampler.Position(0, 0);
        CheckpointReader resumed = null;
        if (latest.isPresent()) {
            resumed = CheckpointReader.open(source, latest.get());
            step = resumed.manifest().step();
            position = dataPosition(resumed, train);
        }
        Parameter tied = rank.pipeline() == null ? null : Pipeline.tiedCopy(model); // its replicas' sum waits for the other copy's
        if (rank.dataParallel() != null) rank.dataParallel().plan(TrainingState.trainable(model), tied == null ? Set.of() : Set.of(tied));
        GradientSync sync = rank.sync(tied);
        Optimizer opt = optimizer(job, model, sync, out); // before the run directory is touched: offload refuses what cannot fit first
        if (mode == RunDirectory.Mode.RESUME && writer) RunDirectory.truncateMetrics(Path.of(job.runDir()), step);

        if (writer) checkpoints.removeUncommitted(); // before any rank can start a save
        boolean writeBehind = ck.async() && !opt.stateOnHost(); // offloaded state is written from where it lives, so before the next update changes it
        try (opt; RunDirectory run = writer ? RunDirectory.open(job, mode) : RunDirectory.notWritten(job); BackgroundSaves saves = new BackgroundSaves(writeBehind);
             HostSnapshot snapshot = new HostSnapshot(backend); var acts = activationOffload(job, model)) {
            LrSchedule schedule = new LrSchedule(tr.lr(), tr.minLr(), tr.warmupSteps(), tr.steps());

            if (resumed != null) {
                TrainingState.restore(model, opt, resumed);
                out.printf("resuming from %s (step %d)%n", latest.get(), step);
                if (!changes.isEmpty()) {
                    out.println("resuming with changed settings: " + ResumeChanges.describe(changes));
                    run.log(record("step", step, "resumed_with_changes", changes));
                }
            } else if (mode == RunDirectory.Mode.RESUME) {
                out.println("nothing to resume in " + run.dir() + ": starting at step 0");
            }
            BatchSampler sampler = new BatchSampler(train, job.seed(), position);
            long trainable = model.parameters().values().stream().filter(Parameter::trainable).mapToLong(p -> p.value().numel()).sum();
            int dp = sync.replicas();
            out.printf(Locale.ROOT, "model: %s, %,d parameters%s, %s on %s | batch %d x %d x %d accum%s%s | %d steps%n",
                    cfg.family().name().toLowerCase(Locale.ROOT), cfg.parameterCount(),
                    job.lora().enabled() ? String.format(Locale.ROOT, " (LoRA rank %d: %,d trainable)", job.lora().rank(), trainable) : "",
                    dtype.configName(), backend.device(), tr.batchSize(), tr.seqLen(), tr.gradAccumSteps(),
                    dp > 1 ? " x " + dp + " data-parallel replicas" : "",
                    rank.mesh().size() > 1 ? " | " + rank.mesh().size() + " ranks (" + job.parallel().launcher() + ")"
                            + (rank.mesh().tp() > 1 ? ", tensor-parallel over " + rank.mesh().tp() : "") : "", tr.steps());
            int b = tr.batchSize(), t = tr.seqLen();
            PipelineRunner pipeline = rank.pipeline() == null ? null : Pipeline.runner(job, model, rank, sync, b, t, out);

            int[][] inputs = new int[tr.gradAccumSteps()][b * t], targets = new int[tr.gradAccumSteps()][b * t];
            int[][] starts = train.packed() ? new int[tr.gradAccumSteps()][b * t] : null; // packed examples' document starts
            long tokensPerStep = (long) dp * b * t * tr.gradAccumSteps();
            // model FLOPs utilisation over every rank's GPU; unknown on CPU and for LoRA (most weights take no gradient)
            double peakFlops = backend instanceof CudaBackend cuda && !job.lora().enabled()
                    ? TrainBench.bf16PeakTflops(cuda.deviceName()) * 1e12 * rank.mesh().size() : Double.NaN;
            double trainLoss = Double.NaN, valLoss = Double.NaN, tokPerSec = 0, stepSeconds = 0;
            long end = exitAfter > 0 ? Math.min(exitAfter, tr.steps()) : tr.steps();
            String lastCheckpoint = latest.orElse(null);
            ProgressLine progress = new ProgressLine(out, rank.mesh().size());
            long timedSteps = 0, loopStart = System.nanoTime();
            int skippedInARow = 0;
            boolean checkpointDue = false;
            boolean perTrainedToken = data != null; // a step's scale follows its trained tokens, which a captured graph cannot
            try (TrainStep trainStep = new TrainStep(model, opt, b, t, tr.gradAccumSteps(), tr.gradClip(), job.cudaGraphs() && !perTrainedToken, sync, pipeline)) {
                if (perTrainedToken) trainStep.perTrainedToken();
                while (step < end) {
                    long t0 = System.nanoTime();
                    for (int micro = 0; micro < tr.gradAccumSteps(); micro++) {
                        sampler.next(dp * b, rank.replica() * b, b, inputs[micro], targets[micro], starts == null ? null : starts[micro]); // this replica's rows
                    }
                    double lr = schedule.at(step);
                    TrainStep.Result r = trainStep.run(inputs, targets, starts, lr);
                    double gradNorm = r.gradNorm();
                    step++;
                    if (!r.skipped()) trainLoss = r.loss();
                    skippedInARow = r.skipped() ? skippedInARow + 1 : 0;
                    if (skippedInARow > MAX_SKIPPED_IN_A_ROW)
                        throw new IllegalStateException("the loss or gradients were not finite for " + skippedInARow + " steps in a row, up to step "
                                + step + " (loss " + r.loss() + "); lower training.lr or check the data");
                    if (r.skipped()) {
                        String where = nonFiniteLinears(model);
                        progress.message(String.format(Locale.ROOT, "step %d skipped: gradient norm %s, loss %s%s; weights and optimizer state unchanged",
                                step, gradNorm, r.loss(), where.isEmpty() ? "" : ", first non-finite input in " + where));
                        run.log(record("step", step, "skipped", true, "loss", String.valueOf(r.loss()), "grad_norm", String.valueOf(gradNorm),
                                "non_finite", where));
                    }
                    stepSeconds = (System.nanoTime() - t0) / 1e9;
                    timedSteps++;
                    double avgStep = (System.nanoTime() - loopStart) / 1e9 / timedSteps;
                    tokPerSec = tokensPerStep / avgStep;
                    if (!r.skipped() && (step % job.logEvery() == 0 || step == end)) {
                        progress.update(step, tr.steps(), trainLoss, lr, gradNorm, tokPerSec, avgStep * (end - step));
                        Map<String, Object> rec = record("step", step, "loss", trainLoss, "lr", lr, "grad_norm", gradNorm, "tokens_per_s", tokPerSec,
                                "step_ms", stepSeconds * 1e3, "elapsed_s", (System.nanoTime() - started) / 1e9, "eta_s", avgStep * (tr.steps() - step));
                        if (Double.isFinite(peakFlops)) rec.put("mfu", cfg.trainingFlopsPerToken(t) * tokPerSec / peakFlops);
                        run.log(rec);
                    }
                    boolean last = step == tr.steps();
                    if (rank.evaluates() && val != null && ((job.eval().every() > 0 && step % job.eval().every() == 0) || last)) {
                        int batches = job.eval().batches() * dp; // as many windows as eval.batches global batches hold, whatever dp is
                        valLoss = pipeline == null ? Evaluation.loss(model, val, b, t, batches)
                                : Evaluation.loss(val, b, t, batches, backend, model.precision().params(), pipeline::evaluate);
                        progress.message(String.format(Locale.ROOT, "step %d: val loss %.4f", step, valLoss));
                        run.log(record("step", step, "val_loss", valLoss));
                    }
                    checkpointDue |= (job.checkpoint().every() > 0 && step % job.checkpoint().every() == 0) || last || step == end;
                    if (checkpointDue && r.skipped()) {
                        progress.message("step " + step + ": checkpoint put off to the next step whose gradients are finite");
                    } else if (checkpointDue) {
                        opt.awaitUpdate(); // an offloaded update may still be sending weights up (the next forward would wait per layer)
                        lastCheckpoint = saveCheckpoint(checkpoints, saves, snapshot, step, model, opt, rank, tied,
                                writer ? state(step, sampler, schedule, trainLoss, valLoss) : null, progress, lastCheckpoint);
                        checkpointDue = false;
                    }
                }
            }
            lastCheckpoint = reportSave(saves.finish(), progress, lastCheckpoint);
            double wall = (System.nanoTime() - started) / 1e9;
            if (pipeline != null) Pipeline.printBubble(job, rank, pipeline, out);
            if (opt instanceof OffloadedAdamW o) out.println(o.timings()); // where the host's update time went, over the run
            if (rank.evaluates() && job.sample().tokens() > 0 && step == tr.steps()) {
                if (pipeline == null) printSample(model);
                else out.println("no sample: generation runs on the whole model, and this run's is split into " + rank.mesh().pp() + " pipeline stages");
            }
            return new Result(step, trainLoss, valLoss, tokPerSec, wall, lastCheckpoint, model);
        }
    }

    /** The job's sample {}: text from the trained model, to see what it learnt. */
    private void printSample(Transformer model) {
        var s = job.sample();
        Gpt2Tokenizer tok = new Gpt2Tokenizer();
        try {
            int[] text = TextGenerator.generate(model, tok.encode(s.prompt()), s.tokens(),
                    new TextGenerator.Sampling(s.temperature(), s.topK(), s.topP(), s.repetitionPenalty(), job.seed()), id -> {});
            out.println("\n---- sample ----\n" + s.prompt() + tok.decode(text) + "\n----------------");
        } catch (IllegalArgumentException e) {
            out.println("no sample: " + e.getMessage());
        }
    }

    /**
     * Every rank snapshots its share of the state (training waits only for that), then writes it, in the background
     * when checkpoint.async; rank 0 commits once every rank's shards are in. Returns the newest committed checkpoint.
     */
    private String saveCheckpoint(Checkpointer checkpoints, BackgroundSaves saves, HostSnapshot snapshot, long step, Transformer model, Optimizer opt, Rank rank,
                                  Parameter tied, Checkpointer.State state, ProgressLine progress, String lastCheckpoint) {
        lastCheckpoint = reportSave(saves.awaitPrevious(), progress, lastCheckpoint);
        long t0 = System.nanoTime();
        List<Checkpointer.Piece> pieces = TrainingState.pieces(model, opt, rank, tied, snapshot);
        double pause = (System.nanoTime() - t0) / 1e9;
        long bytes = pieces.stream().mapToLong(p -> p.data().byteSize()).sum();
        java.time.Duration wait = job.parallel().timeout();
        BackgroundSaves.Done done = saves.submit(step, bytes, () -> checkpoints.save(step, rank.index(), rank.mesh().size(), pieces, state, wait));
        if (saves.async()) {
            if (rank.writes()) progress.message(String.format(Locale.ROOT, "checkpoint of step %d: %.3f s snapshot (%s), written in the background",
                    step, pause, Checkpointer.size(bytes)));
            return lastCheckpoint;
        }
        if (rank.writes()) progress.message(String.format(Locale.ROOT, "checkpoint of step %d: %.3f s snapshot", step, pause));
        return reportSave(done, progress, lastCheckpoint);
    }

    private static String reportSave(BackgroundSaves.Done done, ProgressLine progress, String lastCheckpoint) {
        if (done == null || done.dir() == null) return lastCheckpoint;
        progress.message(String.format(Locale.ROOT, "checkpoint %s (%s from rank 0 in %.2f s, %.2f GB/s)", done.dir(), Checkpointer.size(done.bytes()),
                done.seconds(), done.gbPerSecond()));
        return done.dir();
    }

    /** checkpoint.resume_from: a checkpoint directory, or a run directory standing for its latest. */
    private String resumeFrom(Storage fs, String path) throws IOException {
        if (fs.exists(fs.resolve(path, Checkpointer.MANIFEST))) return path;
        return Checkpointer.ofRun(fs, path, 1).latest().orElseThrow(() -> new IllegalArgumentException(job.source() + ": checkpoint.resume_from = "
                + path + " is neither a checkpoint (no " + Checkpointer.MANIFEST + ") nor a run directory with one"));
    }

    /** Where a checkpoint's sampler stood, checked against the train split it will read. */
    private static BatchSampler.Position dataPosition(CheckpointReader ckpt, Windows train) {
        Map<String, Object> data = ckpt.manifest().data();
        String where = ckpt.dir() + "/" + Checkpointer.MANIFEST;
        if (data == null || !(data.get("epoch") instanceof Number epoch) || !(data.get("cursor") instanceof Number cursor))
            throw new IllegalArgumentException(where + ": data.epoch and data.cursor must be numbers, got " + data);
        if (epoch.longValue() < 0 || cursor.longValue() < 0 || cursor.longValue() > train.windows())
            throw new IllegalArgumentException(where + ": data position (epoch " + epoch + ", cursor " + cursor + ") lies outside the train split, which has "
                    + train.windows() + " windows at this seq_len; the data changed since the checkpoint was written");
        return new BatchSampler.Position(epoch.longValue(), cursor.longValue());
    }

    private Checkpointer.State state(long step, BatchSampler sampler, LrSchedule schedule, double trainLoss, double valLoss) {
        return new Checkpointer.State(TrainingState.layout(job), job.toMap(),
                record("epoch", sampler.position().epoch(), "cursor", sampler.position().cursor(), "train_dir", data != null ? data.source() : job.data().dir()),
                record("seed", job.seed(), "sampler", "splitmix-fisher-yates per epoch"),
                record("step", step, "next_lr", schedule.at(step), "warmup_steps", schedule.warmupSteps(), "total_steps", schedule.totalSteps()),
                record("train_loss", trainLoss, "val_loss", Double.isNaN(valLoss) ? null : valLoss));
    }

    /** offload.activations: the model's recomputed blocks keep their inputs in host memory through this (null: not asked for). */
    static dev.strata.runtime.nn.ActivationOffload activationOffload(JobConfig job, Transformer model) {
        if (!job.offload().activations()) return null;
        var acts = new dev.strata.runtime.nn.ActivationOffload(model.backend());
        model.offloadActivations(acts);
        return acts;
    }

    /** AdamW with its state on the device, or where offload puts it. */
    static Optimizer optimizer(JobConfig job, Transformer model, GradientSync sync, PrintStream out) {
        TrainingSpec tr = job.training();
        var adam = new AdamW.Settings(tr.beta1(), tr.beta2(), tr.eps(), tr.weightDecay(), tr.decayEmbeddings());
        var o = job.offload();
        if (!o.enabled()) return new AdamW(model.parameters(), adam, sync);
        double gpuStateGb = o.autoGpuState() ? MemoryPlan.gpuStateLeft(job, model.config(), model.backend().device(), out) : o.gpuStateGb();
        if (OffloadedAdamW.fitsOnDevice(model.parameters(), sync, gpuStateGb)) {
            out.printf(java.util.Locale.ROOT, "offload: all of AdamW's state fits in the GPU tier (%.1f GB): nothing is offloaded%n", gpuStateGb);
            return new AdamW(model.parameters(), adam, sync);
        }
        return new OffloadedAdamW(model.parameters(), new OffloadedAdamW.Settings(adam, o.optimizer(), Path.of(o.nvmeDir()), o.gpuFraction(),
                Runtime.getRuntime().availableProcessors(), o.subgroupElements(), o.pinMemoryGb(), gpuStateGb, o.updateDuringBackward(),
                o.updateDuringForward(), o.cufile()), sync, out);
    }

    static Map<String, Object> record(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) m.put((String) kv[i], kv[i + 1]);
        return m;
    }

    /**
     * Where the last step's values first went non-finite, as far as FP8 layers saw it: the first layer (forward
     * order) whose weight or input x was, else the last one whose output gradient dy was, e.g.
     * "layers.1.attention.wq (x) and 9 more layers"; empty when no layer measured anything non-finite.
     */
    static String nonFiniteLinears(Transformer model) {
        List<String> forward = new ArrayList<>(), backward = new ArrayList<>();
        model.linears().forEach((name, linear) -> {
            List<String> inputs = linear.nonFiniteInputs();
            if (inputs.contains("weight")) forward.add(name + " (weight)");
            else if (inputs.contains("x")) forward.add(name + " (x)");
            else if (inputs.contains("dy")) backward.add(0, name + " (dy)");
        });
        if (forward.isEmpty() && backward.isEmpty()) return "";
        String first = forward.isEmpty() ? backward.get(0) : forward.get(0);
        int more = forward.size() + backward.size() - 1;
        return more == 0 ? first : first + " and " + more + " more layers";
    }
}
