package dev.strata.trainer.train;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.parallel.tensor.Slices;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.Optimizer;
import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.nn.Placement;
import dev.strata.trainer.model.Transformer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A training run's tensors as a checkpoint holds them and back: the trainable parameters, the optimizer's state and
 * step, the layers' step state; every name and shape checked against the model on the way in.
 */
final class TrainingState {
    private TrainingState() {}

    /**
     * The trainable parameters, whole: tensor-parallel slices are gathered from the rank's tp group (every rank of it
     * calls this), so a checkpoint loads at any tp. Frozen ones (a LoRA run's base) are left out: a resumed run
     * rebuilds them from model.init_from or the seed, so a LoRA checkpoint holds its adapters only.
     */
    static Map<String, HostTensor> hostTensors(Transformer model, Rank rank) {
        Map<String, HostTensor> m = new LinkedHashMap<>();
        for (Parameter p : model.parameters().values()) if (p.trainable()) m.put(p.name(), whole(model, rank, p, p.name(), p.value()));
        return m;
    }

    /** t (p's value or one of its moments) as a checkpoint holds it: whole, of a padded vocabulary the V real rows. */
    private static HostTensor whole(Transformer model, Rank rank, Parameter p, String name, Tensor t) {
        if (p.placement().whole()) return stored(model, name, t);
        try (Tensor all = Slices.gather(rank.tensorParallel(), p.placement(), t)) {
            return stored(model, name, all);
        }
    }

    /** The trainable parameters, last layer first (the order backward finishes them in). */
    static List<Parameter> trainable(Transformer model) {
        List<Parameter> ps = new ArrayList<>();
        for (Parameter p : model.parameters().values()) if (p.trainable()) ps.add(0, p);
        return ps;
    }

    /**
     * AdamW's state, its step count, and the layers' step state ({@code step_state.<layer>.<name>}). Under ZeRO each
     * rank holds the moments of the parameters it owns; they are shared from their owners first, so a checkpoint
     * holds whole tensors and resumes at any dp.
     */
    static Map<String, HostTensor> hostOptimizer(Transformer model, Optimizer opt, Rank rank) {
        Map<String, HostTensor> m = new LinkedHashMap<>();
        Map<String, Tensor> state = opt.state();
        Map<String, Parameter> params = model.parameters();
        if (rank.shardedState()) {
            Map<String, Tensor> whole = new LinkedHashMap<>();
            List<Tensor> received = new ArrayList<>(), tensors = new ArrayList<>();
            List<Parameter> owners = new ArrayList<>();
            for (String moment : new String[] {"exp_avg.", "exp_avg_sq."})
                for (Parameter p : model.parameters().values()) {
                    if (!p.trainable()) continue;
                    Tensor t = state.get(moment + p.name());
                    if (t == null) received.add(t = model.backend().zeros(AdamW.stateType(p), p.shape()));
                    whole.put(moment + p.name(), t);
                    tensors.add(t);
                    owners.add(p);
                }
            rank.dataParallel().shareFromOwners(tensors, owners);
            whole.forEach((k, v) -> m.put(k, whole(model, rank, ofMoment(params, k), k, v)));
            received.forEach(Tensor::close);
        } else {
            state.forEach((k, v) -> m.put(k, whole(model, rank, ofMoment(params, k), k, v)));
        }
        m.put("step", HostTensor.ofDoubles(new double[] {opt.stepCount()}, DType.I64));
        stepState(model).forEach((k, v) -> m.put(k, HostTensor.of(v, v.dtype())));
        return m;
    }

    /** The parameter of an optimizer tensor "exp_avg.<param>". */
    private static Parameter ofMoment(Map<String, Parameter> params, String name) {
        Parameter p = params.get(name.substring(name.indexOf('.') + 1));
        if (p == null) throw new IllegalStateException("optimizer tensor " + name + " belongs to no parameter of the model");
        return p;
    }

    private static Map<String, Tensor> stepState(Transformer model) {
        Map<String, Tensor> m = new LinkedHashMap<>();
        model.linears().forEach((layer, linear) -> linear.stepState().forEach((k, v) -> m.put("step_state." + layer + "." + k, v)));
        return m;
    }

    /**
     * Loads weights, optimizer state and the layers' step state, checking every name and shape against the model.
     * Resuming (opt given) keeps the frozen parameters the checkpoint does not hold as the model was built (a LoRA
     * run's base, from model.init_from or the seed); loading weights alone (opt null: fine-tuning from a checkpoint)
     * keeps the LoRA adapters it does not hold.
     */
    public static void restore(Transformer model, Optimizer opt, Checkpointer.Checkpoint ckpt) { restore(model, opt, ckpt, opt != null); }

    /** keepFrozen: parameters the checkpoint lacks and the model does not train keep their values (a LoRA run's base). */
    static void restore(Transformer model, Optimizer opt, Checkpointer.Checkpoint ckpt, boolean keepFrozen) {
        for (Parameter p : model.parameters().values()) {
            if (!ckpt.model().containsKey(p.name())) {
                if (keepFrozen ? !p.trainable() : p.kind().adapter()) continue;
                if (opt == null && ckpt.model().keySet().stream().allMatch(name -> name.contains(".lora_")))
                    throw new IllegalArgumentException("checkpoint " + ckpt.dir() + " holds LoRA adapters only (its base is the run's model.init_from): "
                            + "fine-tune from that base, or resume the LoRA run");
            }
            load(model, ckpt.model(), p.name(), p.placement(), p.value(), ckpt.dir());
            p.markUpdated();
        }
        if (opt == null) return;
        Map<String, Parameter> params = model.parameters();
        opt.state().forEach((name, t) -> load(model, ckpt.optimizer(), name, ofMoment(params, name).placement(), t, ckpt.dir()));
        stepState(model).forEach((name, t) -> load(model, ckpt.optimizer(), name, Placement.replicated(t.shape()), t, ckpt.dir()));
        model.linears().values().forEach(Linear::stepStateLoaded);
        HostTensor step = ckpt.optimizer().get("step");
        if (step == null) throw new IllegalArgumentException("checkpoint " + ckpt.dir() + " has no optimizer step count");
        opt.restore(step.toInts()[0]);
    }

    /** A tensor as a checkpoint holds it: of the padded vocabulary's tables, the V real rows. */
    private static HostTensor stored(Transformer model, String name, Tensor t) {
        HostTensor h = HostTensor.of(t, t.dtype());
        return t.rank() == 2 ? h.withRows(model.storedRows(name, t.shape())) : h;
    }

    /** Loads the whole tensor name into into, the part of it that where names (a tp slice, or all of it). */
    private static void load(Transformer model, Map<String, HostTensor> tensors, String name, Placement where, Tensor into, String dir) {
        HostTensor h = tensors.get(name);
        if (h == null) throw new IllegalArgumentException("checkpoint " + dir + " lacks tensor '" + name + "' that the model needs");
        int[] shape = where.globalShape();
        if (shape.length == 2 && h.shape().length == 2 && h.shape()[0] != shape[0] && h.shape()[0] == model.storedRows(name, shape))
            h = h.withRows(shape[0]); // the padded vocabulary's zero rows
        if (!java.util.Arrays.equals(h.shape(), shape))
            throw new IllegalArgumentException("checkpoint " + dir + ": tensor '" + name + "' has shape "
                    + java.util.Arrays.toString(h.shape()) + ", the model needs " + java.util.Arrays.toString(shape));
        try (Tensor src = h.to(model.backend(), into.dtype())) {
            where.take(src, into);
        }
    }

}
