package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import java.util.List;

/**
 * The device memory GPU subgroups' moments pass through: {@link #COUNT} windows taken in turn, kept for the run,
 * each as large as the largest subgroup it takes (one holds the embedding's). Kept, a subgroup lands at the same
 * addresses every step, so its AdamW table is the same: nothing to upload or allocate while the update runs. The
 * windows' first subgroups come up during the step's last backward, while the link up has little else to carry;
 * where the next forward runs the updates, each window's next subgroup comes up once the subgroup after its last one
 * is enqueued ({@link GpuSide}).
 */
final class DeviceWindows implements AutoCloseable {
    /** GPU subgroups whose moments are on the device at once: how far their copies up run ahead of their copies back. */
    static final int COUNT = 3;
    private final Backend backend;
    private final Tensor[] m, v;
    private final Backend.Event[] landed; // each window's last copy back: the next copy into it waits for it
    private final int[] windowOf;         // a GPU subgroup's window, by subgroup index
    private final int[] early;            // the subgroup whose moments were brought up into a window ahead of its update; -1: none
    private final Backend.Event[] arrived; // their copy up, which the update waits for
    private final List<Subgroup> firsts;   // the subgroups that come first into each window

    DeviceWindows(Backend backend, DType stateType, List<Subgroup> subgroups) {
        this.backend = backend;
        windowOf = new int[subgroups.size()];
        long[] elements = new long[COUNT];
        int g = 0;
        for (Subgroup k : subgroups)
            if (k.onGpu()) {
                int w = windowOf[k.index()] = g++ % COUNT;
                elements[w] = Math.max(elements[w], k.elements());
            }
        int count = Math.min(g, COUNT);
        m = new Tensor[count];
        v = new Tensor[count];
        landed = new Backend.Event[count];
        early = new int[count];
        arrived = new Backend.Event[count];
        for (int w = 0; w < count; w++) {
            m[w] = backend.empty(stateType, Math.toIntExact(elements[w]));
            v[w] = backend.empty(stateType, Math.toIntExact(elements[w]));
            landed[w] = Backend.DONE;
            early[w] = -1;
        }
        firsts = subgroups.stream().filter(Subgroup::onGpu).limit(count).toList();
    }

    /**
     * The moments of each window's first subgroup up from the store while the step's last forward and backward run,
     * where they are in RAM: the link up is idle then, and after backward it bounds the update. Nothing waits for
     * them until {@link #bringUp}; moments the store holds do not change before the update, so a skipped step's stay.
     */
    void bringUpEarly(StateStore store) {
        for (Subgroup k : firsts) if (!store.writesBack(k)) bringUpAhead(k, store.open(k));
    }

    /**
     * k's moments up from b into its window once the window's last copy back has landed, ahead of k's update, which
     * waits for them ({@link #bringUp}): the window's subgroup before k has been enqueued, or the window is free.
     */
    void bringUpAhead(Subgroup k, StateBlock b) {
        int w = windowOf[k.index()];
        if (early[w] == k.index()) return;
        takeEarly(w).close(); // one there not taken yet is brought up again by its own update
        arrived[w] = copyUp(k, b, w);
        early[w] = k.index();
    }

    /** The host's moments were written (a checkpoint loaded): those brought up early are stale. */
    void forgetEarly() {
        for (int w = 0; w < early.length; w++)
            try (Backend.Event e = takeEarly(w)) { // its buffers may be let go next
                e.await();
            }
    }

    /** Window w's copy up made ahead of its update, forgotten (DONE if none). */
    private Backend.Event takeEarly(int w) {
        Backend.Event e = early[w] < 0 ? Backend.DONE : arrived[w];
        early[w] = -1;
        arrived[w] = null;
        return e;
    }

    /** Subgroup k's first moments on the device, its parameters' parts at its offsets. */
    Tensor m(Subgroup k) { return m[windowOf[k.index()]]; }

    Tensor v(Subgroup k) { return v[windowOf[k.index()]]; }

    /**
     * k's moments up from b into its window once the window's last copy back has landed (unless they came up during
     * backward); the compute stream waits for them.
     */
    void bringUp(Subgroup k, StateBlock b) {
        int w = windowOf[k.index()];
        boolean broughtUp = early[w] == k.index();
        try (Backend.Event ahead = takeEarly(w)) { // another subgroup's would be let go
            if (broughtUp) {
                backend.waitFor(ahead);
                return;
            }
            try (Backend.Event up = copyUp(k, b, w)) {
                backend.waitFor(up);
            }
        }
    }

    /**
     * A {@link StateStore#direct} subgroup's moments straight from where they live into its window, once the host
     * has seen the window's last copy or write back (and a copy up during backward, of a subgroup in RAM) land:
     * the store's I/O thread orders itself by nothing else. The host waits for them (at zero where none are stored).
     */
    void readUp(Subgroup k, StateStore store) {
        int w = windowOf[k.index()];
        try (Backend.Event ahead = takeEarly(w)) {
            ahead.await();
        }
        landed[w].await();
        Backend.Event read = store.readInto(k, m[w], v[w]);
        if (read == null) {
            backend.zero(m[w]);
            backend.zero(v[w]);
        } else {
            read.await();
        }
    }

    /** k's moments from its window straight to where they live once the compute stream's work so far is done; the event says when they are. */
    Backend.Event writeBack(Subgroup k, StateStore store) {
        int w = windowOf[k.index()];
        landed[w].close();
        return landed[w] = store.writeFrom(k, m[w], v[w], backend.record());
    }

    /** k's moments from b into window w once its last copy back has landed; returns when they have (one stream: the last lands last). */
    private Backend.Event copyUp(Subgroup k, StateBlock b, int w) {
        backend.copyFromHostAfter(b.m(), m[w], k.elements(), landed[w]).close();
        return backend.copyFromHostAfter(b.v(), v[w], k.elements(), landed[w]);
    }

    /**
     * k's moments back down into b once the compute stream's work so far (its update) is done. The event says when
     * they have landed; it is the window's, valid until the window's next subgroup is brought up.
     */
    Backend.Event sendBack(Subgroup k, StateBlock b) {
        int w = windowOf[k.index()];
        landed[w].close(); // the window's last copy back: the copies in above waited for it already
        try (Backend.Event updated = backend.record()) {
            backend.copyToHostAfter(m[w], k.elements(), b.m(), updated).close();
            landed[w] = backend.copyToHostAfter(v[w], k.elements(), b.v(), updated);
        }
        return landed[w];
    }

    /** Waits for every window's last copy back: the host's moments are whole. */
    void awaitLanded() { for (Backend.Event e : landed) e.await(); }

    @Override public void close() {
        awaitLanded();
        forgetEarly();
        for (int w = 0; w < m.length; w++) {
            landed[w].close();
            m[w].close();
            v[w].close();
        }
    }
}
