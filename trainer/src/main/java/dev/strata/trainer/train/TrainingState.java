package dev.strata.trainer.train;

import dev.strata.checkpoints.CheckpointReader;
import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.Manifest;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.MeshDim;
import dev.strata.runtime.nn.Optimizer;
import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.nn.Placement;
import dev.strata.trainer.model.Transformer;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A training run's tensors as a checkpoint holds them and back. Saving, each rank snapshots the slices it holds and
 * no other rank writes — its stage's layers; of a slice several ranks hold (data-parallel replicas, tp ranks sharing
 * a kv head or holding a replicated weight), the first holder's; of optimizer state ZeRO shards, the owner's — so
 * nothing is gathered. Loading, each rank reads just its slices, whatever layout wrote them. Frozen parameters (a
 * LoRA run's base) are left out: a resumed run rebuilds them from model.init_from or the seed.
 */
final class TrainingState {
    private TrainingState() {}

    /** The trainable parameters, last layer first (the order backward finishes them in). */
    static List<Parameter> trainable(Transformer model) {
        List<Parameter> ps = new ArrayList<>();
        for (Parameter p : model.parameters().values()) if (p.trainable()) ps.add(0, p);
        return ps;
    }

    /**
     * What this rank writes of the checkpoint, copied into snapshot (so training may go on while it is written): its
     * share of the trainable parameters, of AdamW's moments and, on its stage, of the layers' step state and the
     * optimizer's step count. tied: this stage's copy of a table the first and last stages share (the first writes it).
     */
    static List<Checkpointer.Piece> pieces(Transformer model, Optimizer opt, Rank rank, Parameter tied, HostSnapshot snapshot) {
        boolean firstReplica = rank.replica() == 0, firstStage = rank.stage() == 0;
        int tpRank = rank.mesh().coordinates(rank.index()).tp(), tp = rank.mesh().tp();
        record Part(String name, Manifest.Group group, Placement where, Tensor local, HostTensor host) {} // one of local (copied) and host (written as it is)
        List<Part> parts = new ArrayList<>();
        Map<String, HostTensor> onHost = opt.stateOnHost() ? opt.hostState() : Map.of();
        Map<String, Tensor> state = opt.state(); // an offloaded optimizer's GPU tier; all of it otherwise
        for (Parameter p : model.parameters().values()) {
            if (!p.trainable() || p == tied && !firstStage || !firstOfSlice(p.placement(), tpRank, tp)) continue;
            if (firstReplica) parts.add(new Part(p.name(), Manifest.Group.MODEL, p.placement(), p.value(), null));
            // Sharded state lives at its owner alone; a table every replica updates (the tied one) is written by the first.
            boolean holds = state.containsKey("exp_avg." + p.name()) || onHost.containsKey("exp_avg." + p.name());
            boolean writesMoments = rank.shardedState() && p != tied ? holds : firstReplica;
            if (!writesMoments) continue;
            for (String moment : new String[] {"exp_avg.", "exp_avg_sq."}) {
                Tensor t = state.get(moment + p.name());
                HostTensor h = onHost.get(moment + p.name());
                if (t != null || h != null) parts.add(new Part(moment + p.name(), Manifest.Group.OPTIMIZER, p.placement(), t, h));
            }
        }
        if (firstReplica && tpRank == 0) stepState(model).forEach((k, v) -> parts.add(new Part(k, Manifest.Group.OPTIMIZER, Placement.replicated(v.shape()), v, null)));
        snapshot.start(parts.stream().filter(x -> x.local() != null).mapToLong(x -> x.local().numel() * x.local().dtype().byteSize()).sum());
        List<Checkpointer.Piece> pieces = new ArrayList<>();
        for (Part x : parts) pieces.add(piece(model, x.name(), x.group(), x.where(), x.host() != null ? x.host() : snapshot.copy(x.local())));
        if (firstReplica && tpRank == 0 && firstStage)
            pieces.add(Checkpointer.Piece.whole("step", Manifest.Group.OPTIMIZER, HostTensor.ofDoubles(new double[] {opt.stepCount()}, DType.I64)));
        snapshot.await();
        return pieces;
    }

    /** Whether this tp rank is the first of those holding its slice (all of them hold a whole tensor; tp/shards share a slice). */
    private static boolean firstOfSlice(Placement where, int tpRank, int tp) {
        if (where.whole() || where.shardedOver() != MeshDim.TP) return tpRank == 0;
        return tpRank % (tp / where.shards()) == 0;
    }

    /** This rank's slice h of a tensor, with only the stored rows of a padded vocabulary (V of Vp). */
    private static Checkpointer.Piece piece(Transformer model, String name, Manifest.Group group, Placement where, HostTensor h) {
        int[] global = where.globalShape(), stored = global.clone();
        if (global.length == 2) stored[0] = model.storedRows(name, global);
        if (where.whole()) return Checkpointer.Piece.whole(name, group, stored[0] == global[0] ? h : h.withRows(stored[0]));
        int dim = where.shardedDim(), start = where.offset();
        if (dim == 0 && stored[0] < global[0]) h = h.withRows(Math.max(0, Math.min(h.shape()[0], stored[0] - start)));
        else if (stored[0] < global[0]) h = h.withRows(stored[0]);
        return new Checkpointer.Piece(name, group, stored, dim, start, h);
    }

    private static Map<String, Tensor> stepState(Transformer model) {
        Map<String, Tensor> m = new LinkedHashMap<>();
        model.linears().forEach((layer, linear) -> linear.stepState().forEach((k, v) -> m.put("step_state." + layer + "." + k, v)));
        return m;
    }

    /** The checkpoint's layout, for its manifest. */
    static Map<String, Object> layout(dev.strata.config.JobConfig job) {
        var p = job.parallel();
        return Map.of("tp", p.tp(), "pp", p.pp(), "dp", p.dp(), "zero", p.zero(), "ranks", p.worldSize());
    }

    /**
     * Loads weights, optimizer state and the layers' step state, checking every name and shape against the model.
     * Resuming (opt given) keeps the frozen parameters the checkpoint does not hold as the model was built (a LoRA
     * run's base, from model.init_from or the seed); loading weights alone (opt null: fine-tuning from a checkpoint)
     * keeps the LoRA adapters it does not hold.
     */
    static void restore(Transformer model, Optimizer opt, CheckpointReader ckpt) throws IOException { restore(model, opt, ckpt, opt != null); }

    /** keepFrozen: parameters the checkpoint lacks and the model does not train keep their values (a LoRA run's base). */
    static void restore(Transformer model, Optimizer opt, CheckpointReader ckpt, boolean keepFrozen) throws IOException {
        for (Parameter p : model.parameters().values()) {
            if (ckpt.entry(Manifest.Group.MODEL, p.name()) == null) {
                if (keepFrozen ? !p.trainable() : p.kind().adapter()) continue;
                if (opt == null && ckpt.manifest().tensors().stream().filter(t -> t.group() == Manifest.Group.MODEL).allMatch(t -> t.name().contains(".lora_")))
                    throw new IllegalArgumentException("checkpoint " + ckpt.dir() + " holds LoRA adapters only (its base is the run's model.init_from): "
                            + "fine-tune from that base, or resume the LoRA run");
            }
            load(model, ckpt, Manifest.Group.MODEL, p.name(), p.placement(), p.value());
            p.markUpdated();
        }
        if (opt == null) return;
        Map<String, Parameter> params = model.parameters();
        if (opt.stateOnHost()) {
            for (var e : opt.hostState().entrySet()) {
                HostTensor h = read(model, ckpt, Manifest.Group.OPTIMIZER, e.getKey(), ofMoment(params, e.getKey()).placement());
                if (h.dtype() != e.getValue().dtype())
                    throw new IllegalArgumentException("checkpoint " + ckpt.dir() + ": tensor '" + e.getKey() + "' is " + h.dtype().configName()
                            + ", the offloaded optimizer keeps " + e.getValue().dtype().configName());
                e.getValue().data().duplicate().put(h.data().duplicate());
            }
        }
        for (var e : opt.state().entrySet()) load(model, ckpt, Manifest.Group.OPTIMIZER, e.getKey(), ofMoment(params, e.getKey()).placement(), e.getValue());
        for (var e : stepState(model).entrySet()) load(model, ckpt, Manifest.Group.OPTIMIZER, e.getKey(), Placement.replicated(e.getValue().shape()), e.getValue());
        model.linears().values().forEach(Linear::stepStateLoaded);
        Manifest.TensorEntry step = ckpt.entry(Manifest.Group.OPTIMIZER, "step");
        if (step == null) throw new IllegalArgumentException("checkpoint " + ckpt.dir() + " has no optimizer step count");
        opt.restore(ckpt.region(step, -1, 0, 0).toInts()[0]);
    }

    /** The parameter of an optimizer tensor "exp_avg.<param>". */
    private static Parameter ofMoment(Map<String, Parameter> params, String name) {
        Parameter p = params.get(name.substring(name.indexOf('.') + 1));
        if (p == null) throw new IllegalStateException("optimizer tensor " + name + " belongs to no parameter of the model");
        return p;
    }

    /** Reads the part of tensor name that where says this rank holds (a slice, or all of it) into into. */
    private static void load(Transformer model, CheckpointReader ckpt, Manifest.Group group, String name, Placement where, Tensor into) throws IOException {
        HostTensor h = read(model, ckpt, group, name, where);
        try (Tensor src = h.to(model.backend(), into.dtype())) {
            model.backend().copyInto(src, into);
        }
    }

    /** The part of tensor name that where says this rank holds, in host memory, checked against the model. */
    private static HostTensor read(Transformer model, CheckpointReader ckpt, Manifest.Group group, String name, Placement where) throws IOException {
        Manifest.TensorEntry e = ckpt.entry(group, name);
        if (e == null) throw new IllegalArgumentException("checkpoint " + ckpt.dir() + " lacks tensor '" + name + "' that the model needs");
        int[] global = where.globalShape(), stored = global.clone(), local = where.localShape();
        if (global.length == 2) stored[0] = model.storedRows(name, global);
        if (!Arrays.equals(e.shape(), stored))
            throw new IllegalArgumentException("checkpoint " + ckpt.dir() + ": tensor '" + name + "' has shape " + Arrays.toString(e.shape())
                    + ", the model needs " + Arrays.toString(stored));
        HostTensor h = where.whole() ? ckpt.region(e, -1, 0, 0) : ckpt.region(e, where.shardedDim(), where.offset(), local[where.shardedDim()]);
        if (h.shape().length == 2 && h.shape()[0] < local[0]) h = h.withRows(local[0]); // the padded vocabulary's zero rows
        return h;
    }
}
