package dev.strata.offload;

import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.nn.Parameter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The offloaded moments as a checkpoint reads and writes them: views of the pinned memory they live in, so a save
 * writes them from there and a resume reads into them; those on disk through copies, which a resume's values go
 * back to the files from.
 */
final class MomentViews {
    private final StateStore store;
    private final List<Subgroup> subgroups;
    private final DType stateType;
    private final Map<Subgroup, List<ByteBuffer>> diskCopies = new LinkedHashMap<>(); // the last read's copies of state on disk, m and v a tensor

    MomentViews(StateStore store, List<Subgroup> subgroups, DType stateType) {
        this.store = store;
        this.subgroups = subgroups;
        this.stateType = stateType;
    }

    /** Every subgroup's moments by checkpoint name (exp_avg.* then exp_avg_sq.*); the state must be whole where it lives. */
    Map<String, HostTensor> read() {
        diskCopies.clear();
        int bytes = stateType.byteSize();
        Map<String, HostTensor> m = new LinkedHashMap<>(), v = new LinkedHashMap<>();
        for (Subgroup k : subgroups) {
            StateBlock b = store.open(k);
            boolean onDisk = store.writesBack(k);
            List<ByteBuffer> copies = new ArrayList<>();
            for (int i = 0; i < k.params().size(); i++) {
                Parameter p = k.params().get(i);
                ByteBuffer mb = k.part(b.m(), i, bytes).bytes(), vb = k.part(b.v(), i, bytes).bytes();
                if (onDisk) {
                    mb = copyOf(mb);
                    vb = copyOf(vb);
                    copies.add(mb);
                    copies.add(vb);
                }
                m.put("exp_avg." + p.name(), new HostTensor(stateType, p.shape(), mb));
                v.put("exp_avg_sq." + p.name(), new HostTensor(stateType, p.shape(), vb));
            }
            if (onDisk) diskCopies.put(k, copies);
            store.release(k); // read, not changed: nothing to write back
        }
        store.flush();
        m.putAll(v);
        return m;
    }

    /** After a resume filled the views {@link #read} gave: the copies of state on disk go back to its files. */
    void writeBack() {
        int bytes = stateType.byteSize();
        diskCopies.forEach((k, copies) -> {
            StateBlock b = store.open(k);
            for (int i = 0; i < k.params().size(); i++) {
                k.part(b.m(), i, bytes).bytes().put(copies.get(2 * i).duplicate().clear());
                k.part(b.v(), i, bytes).bytes().put(copies.get(2 * i + 1).duplicate().clear());
            }
            store.done(k);
        });
        diskCopies.clear();
        store.flush();
    }

    private static ByteBuffer copyOf(ByteBuffer b) {
        return ByteBuffer.allocateDirect(b.remaining()).order(ByteOrder.LITTLE_ENDIAN).put(b.duplicate()).flip();
    }
}
