package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.Parameter;
import java.util.List;

/**
 * One step's AdamW on the device, for the GPU tier and the GPU's subgroups alike: adam's numbers, the clip, and the
 * step's schedule and squared norm where the device reads them (so an update left to the next forward reads this
 * step's, not the next one's).
 */
record DeviceUpdate(AdamW.Settings adam, double maxGradNorm, Tensor schedule, Tensor gradSumSquares) {

    /** A slot of p's: its value and gradient, its moments m and v from element offset, its decay and bf16 copy. */
    Backend.AdamWSlot slot(Parameter p, Tensor m, Tensor v, long offset) {
        return new Backend.AdamWSlot(p.value(), p.grad(), m, v, offset, AdamW.weightDecay(adam, p), AdamW.bf16Copy(p));
    }

    /** AdamW over slots in one launch, slots[i] being params[i]'s, each then marked updated. */
    void enqueue(Backend backend, List<Parameter> params, List<Backend.AdamWSlot> slots) {
        backend.adamw(slots, new Backend.AdamWSettings(adam.beta1(), adam.beta2(), adam.eps(), maxGradNorm), schedule, gradSumSquares);
        for (int i = 0; i < params.size(); i++) params.get(i).markUpdated(slots.get(i).copy() != null);
    }
}
