package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The GPU tier (offload.gpu_state_gb): the first parameters' moments kept on the device for the whole run, updated
 * there with no copies, as DeepSpeed's partial offload keeps a share of the state on the GPU. Only what this budget
 * cannot hold is offloaded; state that fits never crosses the link. Checkpoints save and load it as AdamW's.
 */
final class DeviceState implements AutoCloseable {
    private final Backend backend;
    private final List<Parameter> params;
    private final List<Tensor> m = new ArrayList<>(), v = new ArrayList<>();

    /** The longest prefix of params whose two moments fit in budgetBytes, each in stateType. */
    static List<Parameter> fitting(List<Parameter> params, long budgetBytes, DType stateType) {
        long used = 0;
        int n = 0;
        while (n < params.size() && used + 2 * params.get(n).value().numel() * stateType.byteSize() <= budgetBytes)
            used += 2 * params.get(n++).value().numel() * stateType.byteSize();
        return params.subList(0, n);
    }

    DeviceState(Backend backend, List<Parameter> params, DType stateType) {
        this.backend = backend;
        this.params = List.copyOf(params);
        for (Parameter p : params) {
            m.add(backend.zeros(stateType, p.shape()));
            v.add(backend.zeros(stateType, p.shape()));
        }
    }

    boolean isEmpty() { return params.isEmpty(); }

    long elements() { return params.stream().mapToLong(p -> p.value().numel()).sum(); }

    long bytes() { return m.stream().mapToLong(t -> 2 * t.numel() * t.dtype().byteSize()).sum(); }

    /** Enqueues AdamW on every parameter this tier holds (one launch), reading the step's schedule and norm from the device. */
    void enqueueUpdate(DeviceUpdate u) {
        if (params.isEmpty()) return;
        List<Backend.AdamWSlot> slots = new ArrayList<>();
        for (int i = 0; i < params.size(); i++) slots.add(u.slot(params.get(i), m.get(i), v.get(i), 0));
        u.enqueue(backend, params, slots);
    }

    /** The moments by checkpoint name, where they live: on the device, saved and loaded as AdamW's are. */
    Map<String, Tensor> state() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (int i = 0; i < params.size(); i++) out.put("exp_avg." + params.get(i).name(), m.get(i));
        for (int i = 0; i < params.size(); i++) out.put("exp_avg_sq." + params.get(i).name(), v.get(i));
        return out;
    }

    @Override public void close() {
        m.forEach(Tensor::close);
        v.forEach(Tensor::close);
    }
}
