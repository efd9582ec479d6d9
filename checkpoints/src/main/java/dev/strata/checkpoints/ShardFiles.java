package dev.strata.checkpoints;

import com.fasterxml.jackson.core.type.TypeReference;
import dev.strata.runtime.HostTensor;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One rank's files in a checkpoint being written: model-RRRRR.safetensors and optimizer-RRRRR.safetensors with its
 * pieces, then rank-RRRRR.json listing them with their checksums, written once the tensors are durable; and, at rank
 * 0, the lists of every rank joined into the manifest's tensors.
 */
final class ShardFiles {
    private ShardFiles() {}

    /** A piece as its rank lists it. */
    record Listed(String name, Manifest.Group group, String dtype, int[] shape, Manifest.Shard shard) {}

    static String file(Manifest.Group group, int rank) { return String.format("%s-%05d.safetensors", group.name().toLowerCase(java.util.Locale.ROOT), rank); }

    private static String list(int rank) { return String.format("rank-%05d.json", rank); }

    static void write(Storage fs, String dir, int rank, List<Checkpointer.Piece> pieces) throws IOException {
        List<Listed> listed = new ArrayList<>();
        for (Manifest.Group group : Manifest.Group.values()) {
            Map<String, HostTensor> tensors = new LinkedHashMap<>();
            String file = file(group, rank);
            for (Checkpointer.Piece p : pieces) {
                if (p.group() != group) continue;
                if (tensors.put(p.name(), p.data()) != null) throw new IllegalArgumentException("rank " + rank + " writes two pieces of " + p.name());
                int[] shape = p.data().shape();
                boolean whole = p.dim() < 0;
                if (!whole && (p.dim() >= shape.length || p.start() < 0 || p.start() + shape[p.dim()] > p.globalShape()[p.dim()]))
                    throw new IllegalArgumentException(p.name() + ": a piece " + Arrays.toString(shape) + " at " + p.start() + " along dim " + p.dim()
                            + " does not lie within " + Arrays.toString(p.globalShape()));
                listed.add(new Listed(p.name(), group, p.data().dtype().safetensorsName(), p.globalShape(),
                        new Manifest.Shard(file, p.dim(), whole ? 0 : p.start(), whole ? 0 : shape[p.dim()], Checkpointer.sha256(p.data().data()))));
            }
            if (tensors.isEmpty()) continue;
            try (OutputStream out = fs.create(fs.resolve(dir, file))) {
                Safetensors.write(out, tensors, Map.of("format", "pt", "producer", "strata", "rank", String.valueOf(rank)));
            }
        }
        String tmp = fs.resolve(dir, list(rank) + ".tmp");
        try (OutputStream out = fs.create(tmp)) {
            out.write(Checkpointer.JSON.writeValueAsBytes(listed));
        }
        fs.replace(tmp, fs.resolve(dir, list(rank)));
    }

    /**
     * Waits up to wait for every rank's list, then joins them: each tensor once, with all its shards, which must
     * cover it exactly; what is missing is one line naming the tensor or the rank.
     */
    static List<Manifest.TensorEntry> collect(Storage fs, String dir, int ranks, Duration wait, String what) throws IOException {
        long deadline = System.nanoTime() + wait.toNanos();
        Map<String, Manifest.TensorEntry> byName = new LinkedHashMap<>();
        for (int r = 0; r < ranks; r++) {
            String path = fs.resolve(dir, list(r));
            while (!fs.exists(path)) {
                if (System.nanoTime() > deadline)
                    throw new IllegalStateException(what + ": rank " + r + " did not list its shards in " + dir + " within " + wait.toSeconds()
                            + " s; nothing was committed, the previous checkpoint stays the latest");
                sleep();
            }
            ByteBuffer b = fs.read(path, 0, (int) fs.size(path));
            byte[] raw = new byte[b.remaining()];
            b.get(raw);
            for (Listed l : Checkpointer.JSON.readValue(raw, new TypeReference<List<Listed>>() {})) {
                String key = l.group() + "/" + l.name();
                Manifest.TensorEntry e = byName.get(key);
                if (e == null) byName.put(key, e = new Manifest.TensorEntry(l.name(), l.group(), l.dtype(), l.shape(), new ArrayList<>()));
                else if (!e.dtype().equals(l.dtype()) || !Arrays.equals(e.shape(), l.shape()))
                    throw new IllegalStateException(what + ": rank " + r + " writes " + l.name() + " as " + l.dtype() + Arrays.toString(l.shape())
                            + ", another rank as " + e.dtype() + Arrays.toString(e.shape()));
                e.shards().add(l.shard());
            }
        }
        for (Manifest.TensorEntry e : byName.values()) checkCovered(e, what);
        return List.copyOf(byName.values());
    }

    /** The shards of e are one whole, or slices along one dimension that tile it without gaps or overlaps. */
    static void checkCovered(Manifest.TensorEntry e, String what) {
        List<Manifest.Shard> shards = new ArrayList<>(e.shards());
        if (shards.size() == 1 && shards.get(0).dim() < 0) return;
        int dim = shards.get(0).dim();
        shards.sort(java.util.Comparator.comparingInt(Manifest.Shard::start));
        int at = 0;
        for (Manifest.Shard s : shards) {
            if (s.dim() != dim || s.dim() < 0 || s.start() != at)
                throw new IllegalStateException(what + ": the shards of " + e.name() + " " + Arrays.toString(e.shape()) + " do not tile it: " + shards);
            at += s.length();
        }
        if (at != e.shape()[dim])
            throw new IllegalStateException(what + ": the shards of " + e.name() + " cover " + at + " of its " + e.shape()[dim] + " along dim " + dim);
    }

    private static void sleep() {
        try {
            Thread.sleep(20);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the other ranks' shards", e);
        }
    }
}
