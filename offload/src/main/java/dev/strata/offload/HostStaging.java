package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * Page-locked places on the host for the CPU-updated subgroups' weights and gradients. Resident (RAM has room):
 * each subgroup has its own, the weights stay there between steps, so they cross the link down only at the first
 * update (and after a resume), and a gradient comes down as soon as backward finishes it. Otherwise a few blocks
 * taken in turn, which bound how far the copies down run ahead of the CPU.
 */
final class HostStaging implements AutoCloseable {
    /** Window blocks when not resident. */
    static final int WINDOW = 4;
    private final Backend.HostBuffer[] weights, grads;
    private final boolean resident;
    private final int stateBytes;

    HostStaging(Backend backend, List<Subgroup> onCpu, int stateBytes, boolean resident) {
        this.resident = resident;
        this.stateBytes = stateBytes;
        long largest = onCpu.stream().mapToLong(Subgroup::elements).max().orElse(0);
        int count = resident ? onCpu.size() : largest == 0 ? 0 : WINDOW;
        weights = new Backend.HostBuffer[count];
        grads = new Backend.HostBuffer[count];
        for (int i = 0; i < count; i++) {
            long bytes = (resident ? onCpu.get(i).elements() : largest) * stateBytes;
            weights[i] = backend.hostBuffer(bytes);
            grads[i] = backend.hostBuffer(bytes);
        }
    }

    /** What the resident places of these CPU subgroups take: a weight and a gradient an element. */
    static long residentBytes(List<Subgroup> onCpu, int stateBytes) { return 2 * stateBytes * onCpu.stream().mapToLong(Subgroup::elements).sum(); }

    /** What the window takes, for CPU subgroups of up to subgroupBytes a part. */
    static long windowBytes(long subgroupBytes) { return WINDOW * 2L * subgroupBytes; }

    boolean resident() { return resident; }

    /** Where the step's c-th CPU subgroup's weights are (resident) or land, and are updated. */
    Backend.HostBuffer weights(int c) { return weights[c % weights.length]; }

    Backend.HostBuffer grads(int c) { return grads[c % grads.length]; }

    /**
     * What CpuAdamW updates of the c-th CPU subgroup k: its weights and gradients here, its moments in b, written to
     * weightsOut and momentsOut (this staging's weights and b themselves: in place); step gives each parameter's numbers.
     */
    List<CpuAdamW.Part> parts(Subgroup k, int c, StateBlock b, Backend.HostBuffer weightsOut, StateBlock momentsOut, Function<Parameter, CpuAdamW.Step> step) {
        List<CpuAdamW.Part> parts = new ArrayList<>();
        for (int i = 0; i < k.params().size(); i++)
            parts.add(new CpuAdamW.Part(k.part(weights(c), i, stateBytes).bytes(), k.part(grads(c), i, stateBytes).bytes(), k.part(b.m(), i, stateBytes).bytes(),
                    k.part(b.v(), i, stateBytes).bytes(), k.params().get(i).value().numel(), step.apply(k.params().get(i)), k.part(weightsOut, i, stateBytes).bytes(),
                    k.part(momentsOut.m(), i, stateBytes).bytes(), k.part(momentsOut.v(), i, stateBytes).bytes()));
        return parts;
    }

    /** Resident: the c-th subgroup's weights are now other's, and other the buffer they were in. */
    Backend.HostBuffer swapWeights(int c, Backend.HostBuffer other) {
        Backend.HostBuffer mine = weights[c];
        weights[c] = other;
        return mine;
    }

    /**
     * Subgroup k's weights from host up to the device, on the copy stream up (after nothing on the device: the
     * caller knows nothing reads them there until the compute stream waits); returns the last copy's event.
     */
    static Backend.Event sendUp(Backend backend, Subgroup k, Backend.HostBuffer host, int stateBytes) {
        Backend.Event last = Backend.DONE;
        for (int i = 0; i < k.params().size(); i++) {
            last.close();
            last = backend.copyFromHostAfter(k.part(host, i, stateBytes), k.params().get(i).value(), Backend.DONE);
        }
        return last;
    }

    @Override public void close() {
        for (int i = 0; i < weights.length; i++) {
            weights[i].close();
            grads[i].close();
        }
    }
}
