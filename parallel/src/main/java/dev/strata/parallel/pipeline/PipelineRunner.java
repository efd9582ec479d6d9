package dev.strata.parallel.pipeline;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.Activations;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.nn.StageModel;
import java.util.List;

/**
 * Runs one stage of a pipeline through a step's micro-batches in its schedule's order. Each micro-batch in flight has
 * its own {@link Activations}, bound while its forward or backward runs; activations go to the next stage and their
 * gradients back to the one before, point-to-point over the pp group (stage s is rank s of it). It counts the most
 * micro-batches and activation bytes it held at once, and the time its stage computed against the step's.
 */
public final class PipelineRunner {
    private final StageModel model;
    private final Backend backend;
    private final Communicator pp;
    private final PipelineSchedule schedule;
    private final GradientSync sync;
    private final int rows, dim;       // of the hidden state between stages: (rows, C), rows a shard's under sequence parallelism
    private final DType hidden;
    private boolean countBytes;        // walking the contexts costs host time every forward: only when asked
    private int peakInFlight;
    private long peakBytes, busyNanos, wallNanos, weightGradients;

    public PipelineRunner(StageModel model, Backend backend, Communicator pp, PipelineSchedule schedule, GradientSync sync, int rows, int dim,
                          DType hidden) {
        this.model = model;
        this.backend = backend;
        this.pp = pp;
        this.schedule = schedule;
        this.sync = sync;
        this.rows = rows;
        this.dim = dim;
        this.hidden = hidden;
    }

    private boolean first() { return pp.rank() == 0; }

    private boolean last() { return pp.rank() == pp.size() - 1; }

    /** One step's forwards and backwards: ids and targets (B,T) per micro-batch; the last stage adds the losses into lossSum. */
    public void run(List<Tensor> ids, List<Tensor> targets, int b, int t, double gradScale, Tensor lossSum) {
        long started = System.nanoTime();
        int m = ids.size();
        Activations[] contexts = new Activations[m];
        Tensor[] inputs = new Tensor[m], outputs = new Tensor[m]; // a received input the stage's model keeps; the last stage's dlogits
        int live = 0;
        for (PipelineSchedule.Action a : schedule.actions(pp.rank(), pp.size(), m)) {
            int i = a.microBatch();
            if (a.forward()) {
                contexts[i] = new Activations();
                inputs[i] = first() ? ids.get(i) : receive(pp.rank() - 1);
                try (Activations.Scope bound = contexts[i].bind()) {
                    long t0 = System.nanoTime();
                    Tensor out = model.forwardStage(inputs[i], targets.get(i), b, t, gradScale, lossSum, true);
                    busyNanos += System.nanoTime() - t0;
                    if (last()) outputs[i] = out;
                    else send(out, pp.rank() + 1);
                }
                peakInFlight = Math.max(peakInFlight, ++live);
                if (countBytes) {
                    long bytes = 0;
                    for (Activations c : contexts) if (c != null) bytes += c.bytes();
                    peakBytes = Math.max(peakBytes, bytes);
                }
            } else if (a.pass() == PipelineSchedule.Pass.W) {
                long t0 = System.nanoTime();
                weightGradients += contexts[i].runDeferred();
                busyNanos += System.nanoTime() - t0;
                contexts[i] = null;
            } else {
                // Under zero_bubble the weight gradients land after the backward: the data-parallel buckets wait for reduce().
                sync.startMicroBatch(i == m - 1 && schedule != PipelineSchedule.ZERO_BUBBLE);
                Tensor dout = last() ? outputs[i] : receive(pp.rank() + 1);
                if (schedule == PipelineSchedule.ZERO_BUBBLE) contexts[i].deferWeightGradients();
                try (Activations.Scope bound = contexts[i].bind()) {
                    long t0 = System.nanoTime();
                    Tensor dx = model.backward(dout);
                    busyNanos += System.nanoTime() - t0;
                    dout.close();
                    if (dx != null) send(dx, pp.rank() - 1);
                }
                if (!first()) inputs[i].close();
                if (schedule != PipelineSchedule.ZERO_BUBBLE) contexts[i] = null;
                live--;
            }
        }
        wallNanos += System.nanoTime() - started;
    }

    /** Forward only (evaluation): the last stage's summed loss, then every stage's lossSum holds it. */
    public void evaluate(Tensor ids, Tensor targets, int b, int t, Tensor lossSum) {
        try (Activations.Scope bound = new Activations().bind()) {
            Tensor input = first() ? ids : receive(pp.rank() - 1);
            Tensor out = model.forwardStage(input, targets, b, t, 0, lossSum, false);
            if (!first()) input.close();
            if (out != null) send(out, pp.rank() + 1);
        }
        pp.allReduce(lossSum, ReduceOp.SUM).await(); // the other stages added nothing
    }

    private Tensor receive(int from) {
        Tensor x = backend.empty(hidden, rows, dim);
        pp.recv(x, from).await();
        return x;
    }

    private void send(Tensor x, int to) {
        pp.send(x, to).await();
        x.close();
    }

    /** How many weight-gradient GEMMs ran in zero-bubble W passes, put off from their backward. */
    public long weightGradientsPutOff() { return weightGradients; }

    /** The most micro-batches this stage held activations of at once, over every step so far. */
    public int peakInFlight() { return peakInFlight; }

    /** From now on, count the bytes of activations held (for {@link #peakActivationBytes}; it costs host time). */
    public void countActivationBytes() { countBytes = true; }

    /** The most bytes of activations (distinct tensors in the micro-batches' contexts) this stage held at once, while counted. */
    public long peakActivationBytes() { return peakBytes; }

    /** The share of the steps' wall time this stage did not compute: the bubble as measured, waits for peers included. */
    public double measuredBubble() { return wallNanos == 0 ? 0 : 1 - (double) busyNanos / wallNanos; }
}
