package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.List;

/**
 * Parameters updated together, on one side: the GPU (its moments streamed in and out) or the CPU (its gradients
 * streamed out, its moments, and where RAM has room its weights, kept on the host). offsets[i]: where params[i]'s elements start in
 * the subgroup's state buffers; elements counts them with the padding that aligns each part.
 */
record Subgroup(int index, List<Parameter> params, long[] offsets, long elements, boolean onGpu) {

    /** The parameters in order, cut into subgroups of about target elements (a larger parameter is one of its own). */
    static List<List<Parameter>> partition(List<Parameter> params, long target) {
        List<List<Parameter>> out = new ArrayList<>();
        List<Parameter> current = new ArrayList<>();
        long size = 0;
        for (Parameter p : params) {
            if (!current.isEmpty() && size + p.value().numel() > target) {
                out.add(current);
                current = new ArrayList<>();
                size = 0;
            }
            current.add(p);
            size += p.value().numel();
        }
        if (!current.isEmpty()) out.add(current);
        return out;
    }

    /**
     * The parameters in subgroups, a share fraction of them updated by the GPU: spread through the order, so the
     * device always has some while the CPU works on others.
     */
    static List<Subgroup> split(List<Parameter> params, long subgroupElements, double fraction) {
        List<Subgroup> out = new ArrayList<>();
        double credit = 0;
        for (List<Parameter> group : partition(params, subgroupElements)) {
            long n = group.stream().mapToLong(p -> p.value().numel()).sum();
            credit += fraction * n;
            boolean onGpu = credit >= n / 2.0 && fraction > 0;
            if (onGpu) credit -= n;
            out.add(of(out.size(), group, onGpu));
        }
        return out;
    }

    /** params[i]'s part of one of this subgroup's buffers (moments, weights or gradients), stateBytes an element. */
    Backend.HostBuffer part(Backend.HostBuffer buffer, int i, int stateBytes) {
        return StateBlock.window(buffer, offsets[i] * stateBytes, params.get(i).value().numel() * stateBytes);
    }

    /** Where each parameter's part starts, in elements: a multiple of this, so the device's vector loads of it are aligned. */
    static final int ALIGN = 16;

    static Subgroup of(int index, List<Parameter> params, boolean onGpu) {
        long[] offsets = new long[params.size()];
        long n = 0;
        for (int i = 0; i < params.size(); i++) {
            offsets[i] = n;
            n = (n + params.get(i).value().numel() + ALIGN - 1) / ALIGN * ALIGN;
        }
        return new Subgroup(index, List.copyOf(params), offsets, n, onGpu);
    }
}
