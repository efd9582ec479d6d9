package dev.strata.parallel.pipeline;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.Activations;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.nn.StageModel;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs one stage of a pipeline through a step's micro-batches in its schedule's order. Each micro-batch in flight has
 * its own {@link Activations}, bound while its forward or backward runs; activations go to the next stage and their
 * gradients back to the one before, point-to-point over the pp group (stage s is rank s of it; under interleaving
 * the last stage's chunks send on to the first stage's next chunk). It counts the most
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
    private final Map<Integer, Map<Integer, List<Mailbox.Message>>> sendOrders = new HashMap<>(); // by micro-batch count: each peer's messages to this stage
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

    /** The model's chunk that the stage's chunk c is (chunks cycle over the stages). */
    private int modelChunk(int c, int stage) { return c * pp.size() + stage; }

    private boolean first(int c) { return modelChunk(c, pp.rank()) == 0; }

    private boolean last(int c) { return modelChunk(c, pp.rank()) == pp.size() * model.chunks() - 1; }

    private int next() { return (pp.rank() + 1) % pp.size(); }

    private int previous() { return (pp.rank() + pp.size() - 1) % pp.size(); }

    /** One step's forwards and backwards: ids and targets (B,T) per micro-batch; the last stage adds the losses into lossSum. */
    public void run(List<Tensor> ids, List<Tensor> targets, int b, int t, double gradScale, Tensor lossSum) {
        long started = System.nanoTime();
        int m = ids.size(), chunks = model.chunks();
        Mailbox mail = new Mailbox(m);
        Activations[][] contexts = new Activations[chunks][m];
        Tensor[][] inputs = new Tensor[chunks][m], outputs = new Tensor[chunks][m]; // a received input the model keeps; the last chunk's dlogits
        int live = 0;
        for (PipelineSchedule.Action a : schedule.actions(pp.rank(), pp.size(), m)) {
            int c = a.chunk(), i = a.microBatch();
            if (a.forward()) {
                contexts[c][i] = new Activations();
                inputs[c][i] = first(c) ? ids.get(i) : mail.take(PipelineSchedule.Pass.F, modelChunk(c, pp.rank()) - 1, i);
                try (Activations.Scope bound = contexts[c][i].bind()) {
                    long t0 = System.nanoTime();
                    Tensor out = model.forwardStage(c, inputs[c][i], targets.get(i), b, t, gradScale, lossSum, true);
                    busyNanos += System.nanoTime() - t0;
                    if (last(c)) outputs[c][i] = out;
                    else send(out, next());
                }
                peakInFlight = Math.max(peakInFlight, ++live);
                if (countBytes) {
                    long bytes = 0;
                    for (Activations[] row : contexts) for (Activations x : row) if (x != null) bytes += x.bytes();
                    peakBytes = Math.max(peakBytes, bytes);
                }
            } else if (a.pass() == PipelineSchedule.Pass.W) {
                long t0 = System.nanoTime();
                weightGradients += contexts[c][i].runDeferred();
                busyNanos += System.nanoTime() - t0;
                contexts[c][i] = null;
            } else {
                // A chunk's last micro-batch finishes its gradients, but under zero_bubble only the W passes do: the buckets wait for reduce().
                sync.startMicroBatch(i == m - 1 && !schedule.splitsBackward());
                Tensor dout = last(c) ? outputs[c][i] : mail.take(PipelineSchedule.Pass.B, modelChunk(c, pp.rank()) + 1, i);
                if (schedule.splitsBackward()) contexts[c][i].deferWeightGradients();
                try (Activations.Scope bound = contexts[c][i].bind()) {
                    long t0 = System.nanoTime();
                    Tensor dx = model.backward(c, dout);
                    busyNanos += System.nanoTime() - t0;
                    dout.close();
                    if (dx != null) send(dx, previous());
                }
                if (!first(c)) inputs[c][i].close();
                if (!schedule.splitsBackward()) contexts[c][i] = null;
                live--;
            }
        }
        wallNanos += System.nanoTime() - started;
    }

    /** Forward only (evaluation): the last stage's summed loss, then every stage's lossSum holds it. */
    public void evaluate(Tensor ids, Tensor targets, int b, int t, Tensor lossSum) {
        for (int c = 0; c < model.chunks(); c++) {
            try (Activations.Scope bound = new Activations().bind()) {
                Tensor input = first(c) ? ids : receive(previous());
                Tensor out = model.forwardStage(c, input, targets, b, t, 0, lossSum, false);
                if (!first(c)) input.close();
                if (out != null) send(out, next());
            }
        }
        pp.allReduce(lossSum, ReduceOp.SUM).await(); // the other stages added nothing
    }

    /**
     * What reaches this stage in a step. A peer's messages arrive in the order its own schedule sends them, which
     * under interleaving is not the order this stage needs them in (one link carries activations and gradients of
     * several chunks): the mailbox replays each peer's schedule to name every message as it comes off the link, and
     * holds those that arrive before they are needed.
     */
    private final class Mailbox {
        record Message(PipelineSchedule.Pass pass, int fromChunk, int microBatch) {}

        private final Map<Integer, ArrayDeque<Message>> expected = new HashMap<>();
        private final Map<Message, Tensor> arrived = new HashMap<>();

        Mailbox(int microBatches) {
            sendOrders.computeIfAbsent(microBatches, this::sendOrders).forEach((peer, order) -> expected.put(peer, new ArrayDeque<>(order)));
        }

        /** Each peer's messages to this stage, in the order its schedule sends them (the same every step). */
        private Map<Integer, List<Message>> sendOrders(int microBatches) {
            Map<Integer, List<Message>> orders = new HashMap<>();
            int last = pp.size() * model.chunks() - 1;
            for (int peer = 0; peer < pp.size(); peer++)
                for (PipelineSchedule.Action a : schedule.actions(peer, pp.size(), microBatches)) {
                    int from = modelChunk(a.chunk(), peer);
                    boolean toMe = a.forward() ? from != last && (peer + 1) % pp.size() == pp.rank()
                            : a.pass() == PipelineSchedule.Pass.B && from != 0 && (peer + pp.size() - 1) % pp.size() == pp.rank();
                    if (toMe) orders.computeIfAbsent(peer, x -> new ArrayList<>()).add(new Message(a.pass(), from, a.microBatch()));
                }
            return orders;
        }

        /** The activation (F) or the gradient (B) that the model's chunk fromChunk sent for the micro-batch. */
        Tensor take(PipelineSchedule.Pass pass, int fromChunk, int microBatch) {
            Message wanted = new Message(pass, fromChunk, microBatch);
            int peer = fromChunk % pp.size();
            while (!arrived.containsKey(wanted)) {
                Message next = expected.get(peer).poll();
                if (next == null) throw new IllegalStateException("stage " + pp.rank() + " waits for " + wanted + ", which stage " + peer + " never sends");
                arrived.put(next, receive(peer));
            }
            return arrived.remove(wanted);
        }
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
