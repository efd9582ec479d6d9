package dev.strata.trainer.train;

import dev.strata.parallel.pipeline.PipelineRunner;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.nn.Optimizer;
import dev.strata.runtime.nn.Parameter;
import dev.strata.trainer.model.Documents;
import dev.strata.trainer.model.Transformer;

/**
 * One optimizer step: forward and backward of each micro-batch, then the clipped AdamW update, which also zeroes
 * the gradients for the next step. Token ids and the step's learning rate are written into fixed device tensors
 * before the step and the loss and gradient norm are read back once after it, so nothing in between waits for the
 * host. With graphs on (CUDA), the first step runs eagerly (kernels compile, GEMM algorithms are chosen, weight
 * copies and buffers reach their steady size) and is then captured as two graphs, one micro-batch and one update,
 * that every later step replays: the host's launch overhead is gone from the step.
 */
public final class TrainStep implements AutoCloseable {

    /** The step's mean loss per token and its gradient norm before clipping; a non-finite norm skipped the update. */
    public record Result(double loss, double gradNorm) {
        public boolean skipped() { return !Double.isFinite(gradNorm); }
    }

    private final Transformer model;
    private final Optimizer opt;
    private final Backend backend;
    private final int b, t, accumSteps;
    private final double maxGradNorm;
    private double gradScale;                // 1 / the tokens the step's loss is the mean over
    private boolean perTrainedToken;         // gradScale from the step's targets that train (not -1), not from b·t·accum
    private final Tensor inputs, targets, lossSum; // (B,T), (B,T) int32; (1) summed loss of the step
    private final Backend.HostBuffer lossOnHost;   // lossSum, read before the update: an update the host takes part in may end beside the next forward
    private final boolean graphs;
    private final GradientSync sync;
    private final java.util.List<Parameter> trainable; // last layer first
    private final PipelineRunner pipeline;             // null: the whole model here
    private final java.util.List<Tensor> stepInputs = new java.util.ArrayList<>(), stepTargets = new java.util.ArrayList<>(); // a pipeline's micro-batches
    private Backend.Graph microGraph, updateGraph;

    /** maxGradNorm = 0 turns clipping off; graphs asks for CUDA graphs (ignored where the backend has none). */
    public TrainStep(Transformer model, Optimizer opt, int b, int t, int accumSteps, double maxGradNorm, boolean graphs) {
        this(model, opt, b, t, accumSteps, maxGradNorm, graphs, GradientSync.NONE);
    }

    /**
     * With data parallelism: b is this rank's share of each micro-batch, and the gradients are scaled by the global
     * token count (b·t·accum·replicas) so that the sync's sum is the global mean, as one process with the whole batch
     * computes it.
     */
    public TrainStep(Transformer model, Optimizer opt, int b, int t, int accumSteps, double maxGradNorm, boolean graphs, GradientSync sync) {
        this(model, opt, b, t, accumSteps, maxGradNorm, graphs, sync, null);
    }

    /** As a pipeline stage: the runner takes the step's micro-batches through the schedule (no graphs). */
    TrainStep(Transformer model, Optimizer opt, int b, int t, int accumSteps, double maxGradNorm, boolean graphs, GradientSync sync,
              PipelineRunner pipeline) {
        this.model = model;
        this.pipeline = pipeline;
        this.sync = sync;
        this.opt = opt;
        this.backend = model.backend();
        this.b = b;
        this.t = t;
        this.accumSteps = accumSteps;
        this.maxGradNorm = maxGradNorm;
        this.gradScale = 1.0 / ((long) b * t * accumSteps * sync.replicas());
        this.graphs = graphs && sync.capturable() && opt.capturable() && pipeline == null; // collectives or host work between kernels: nothing to capture
        this.inputs = backend.zeros(DType.I32, b, t);
        this.targets = backend.zeros(DType.I32, b, t);
        this.lossSum = backend.zeros(model.precision().params(), 1);
        this.lossOnHost = backend.hostBuffer(lossSum.dtype().byteSize());
        model.zeroGrad();
        this.trainable = TrainingState.trainable(model);
        if (sync.replicas() > 1) model.onGradientsDone(sync::gradientsDone);
        else if (opt.stateOnHost()) { // offload moves finished gradients during backward, and updated weights back during the next forward
            model.onGradientsDone(opt::gradientsDone);
            model.onParametersNeeded(opt::parametersNeeded);
        }
    }

    /**
     * From now on a step's loss is the mean over the targets that train (not -1: fine-tuning's prompts and padding),
     * not over every position, and gradients are scaled to match. One process and eager steps only: the scale
     * changes from step to step, which a captured graph cannot follow.
     */
    public TrainStep perTrainedToken() {
        if (sync.replicas() > 1 || pipeline != null || graphs)
            throw new IllegalStateException("a loss per trained token runs on one process, without pipeline stages or CUDA graphs");
        perTrainedToken = true;
        return this;
    }

    /** inputs[i], targets[i]: the B*T token ids of micro-batch i (accumSteps of them); lr: this step's rate. */
    public Result run(int[][] inputs, int[][] targets, double lr) { return run(inputs, targets, null, lr); }

    /**
     * As above, with packed examples: starts[i] holds, for each position of micro-batch i, where its document begins
     * in its row (null: one a row). One process, eager steps only, as {@link #perTrainedToken}.
     */
    public Result run(int[][] inputs, int[][] targets, int[][] starts, double lr) {
        if (starts != null && (pipeline != null || graphs))
            throw new IllegalStateException("packed examples train on one process, without pipeline stages or CUDA graphs");
        if (inputs.length != accumSteps || targets.length != accumSteps)
            throw new IllegalArgumentException("a step takes " + accumSteps + " micro-batches, got " + inputs.length);
        if (perTrainedToken) {
            long trained = 0;
            for (int[] micro : targets) for (int target : micro) if (target >= 0) trained++;
            gradScale = 1.0 / Math.max(1, trained);
        }
        backend.zero(lossSum);
        opt.prepareStep(lr);
        if (pipeline != null) {
            for (int i = 0; i < accumSteps; i++) {
                if (stepInputs.size() <= i) {
                    stepInputs.add(backend.zeros(DType.I32, b, t));
                    stepTargets.add(backend.zeros(DType.I32, b, t));
                }
                write(inputs[i], stepInputs.get(i));
                write(targets[i], stepTargets.get(i));
            }
            pipeline.run(stepInputs, stepTargets, b, t, gradScale, lossSum);
        }
        for (int i = 0; pipeline == null && i < accumSteps; i++) {
            write(inputs[i], this.inputs);
            write(targets[i], this.targets);
            sync.startMicroBatch(i == accumSteps - 1);
            opt.startMicroBatch(i == accumSteps - 1); // after the writes: what it sends up does not hold back the tokens
            if (microGraph != null) {
                microGraph.replay();
            } else if (starts != null) {
                try (Documents docs = Documents.of(model, starts[i], b, t)) {
                    model.documents(docs);
                    microBatch();
                } finally {
                    model.documents(null);
                }
            } else {
                microBatch();
            }
        }
        sync.reduce(trainable, lossSum);
        double loss;
        try (Backend.Event down = backend.copyToHost(lossSum, lossOnHost)) {
            if (updateGraph != null) updateGraph.replay();
            else update();
            down.await();
            loss = lossCopied();
        }
        Result r = new Result(loss * gradScale, opt.lastGradNorm());
        if (r.skipped()) opt.stepSkipped();
        if (graphs && microGraph == null) {
            microGraph = backend.capture(this::microBatch);
            updateGraph = microGraph == null ? null : backend.capture(this::update);
        }
        return r;
    }

    /** The step's summed loss as copied down into lossOnHost. */
    private double lossCopied() { return new dev.strata.runtime.HostTensor(lossSum.dtype(), new int[] {1}, lossOnHost.bytes()).toDoubles()[0]; }

    /** Whether later steps replay captured graphs. */
    public boolean replaysGraphs() { return updateGraph != null; }

    private void microBatch() { model.forwardBackward(inputs, targets, b, t, gradScale, lossSum); }

    private void update() {
        model.endStep();
        opt.enqueueUpdate(maxGradNorm);
        sync.gatherParameters(trainable);
        for (Parameter p : trainable) if (!opt.gradientPending(p)) p.zeroGrad(); // a pending one the optimizer zeroes once read
    }

    private void write(int[] ids, Tensor into) {
        try (Tensor x = backend.fromInts(ids, b, t)) {
            backend.copyInto(x, into);
        }
    }

    /**
     * Closing waits for the last update to have written every parameter; so does {@link Optimizer#awaitUpdate}, which
     * whoever reads the weights between steps other than by a forward (a checkpoint, a sample) calls first.
     */
    @Override public void close() {
        opt.awaitUpdate();
        model.onParametersNeeded(null);
        if (microGraph != null) microGraph.close();
        if (updateGraph != null) updateGraph.close();
        inputs.close();
        targets.close();
        lossSum.close();
        lossOnHost.close();
        stepInputs.forEach(Tensor::close);
        stepTargets.forEach(Tensor::close);
    }
}
