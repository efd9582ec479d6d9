package dev.strata.checkpoints;

import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A committed checkpoint opened for reading: its manifest, and any slice of any tensor assembled from the shards
 * it overlaps, so a rank of another layout reads just what it holds, from as many files as that spans. Each file
 * is opened once and each shard checked against its SHA-256 the first time it is read.
 */
public final class CheckpointReader {
    private final Storage fs;
    private final String dir;
    private final Manifest manifest;
    private final Map<String, Manifest.TensorEntry> entries = new LinkedHashMap<>();
    private final Map<String, Map<String, HostTensor>> files = new HashMap<>();
    private final Set<Manifest.Shard> verified = new HashSet<>();

    private CheckpointReader(Storage fs, String dir, Manifest manifest) {
        this.fs = fs;
        this.dir = dir;
        this.manifest = manifest;
        for (Manifest.TensorEntry e : manifest.tensors()) {
            entries.put(key(e.group(), e.name()), e);
            try {
                ShardFiles.checkCovered(e, "checkpoint " + dir);
            } catch (IllegalStateException bad) {
                throw new IllegalArgumentException(bad.getMessage());
            }
        }
    }

    public static CheckpointReader open(Storage fs, String dir) throws IOException { return new CheckpointReader(fs, dir, Checkpointer.readManifest(fs, dir)); }

    public Manifest manifest() { return manifest; }

    public String dir() { return dir; }

    private static String key(Manifest.Group group, String name) { return group + "/" + name; }

    /** The entry of a tensor, or null when the checkpoint does not hold it. */
    public Manifest.TensorEntry entry(Manifest.Group group, String name) { return entries.get(key(group, name)); }

    /**
     * Elements [start, start + length) along dim of the tensor (dim -1: all of it), in its stored dtype; parts past
     * the stored tensor's end along dim (a padded vocabulary's rows) are zeros.
     */
    public HostTensor region(Manifest.TensorEntry e, int dim, int start, int length) throws IOException {
        int[] shape = e.shape().clone(), lo = new int[shape.length];
        if (dim >= 0) {
            shape[dim] = length;
            lo[dim] = start;
        }
        DType dtype = DType.fromSafetensorsName(e.dtype());
        ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(numel(shape) * dtype.byteSize())).order(ByteOrder.LITTLE_ENDIAN);
        for (Manifest.Shard s : e.shards()) {
            int[] shardLo = new int[shape.length], shardShape = e.shape().clone();
            if (s.dim() >= 0) {
                shardLo[s.dim()] = s.start();
                shardShape[s.dim()] = s.length();
            }
            if (!overlaps(shardLo, shardShape, lo, shape)) continue;
            HostTensor piece = shard(e, s, shardShape);
            copyOverlap(piece.data(), shardShape, shardLo, out, shape, lo, dtype.byteSize());
        }
        return new HostTensor(dtype, shape, out.rewind());
    }

    /** A shard's data, from its file, checked against the manifest's dtype, shape and SHA-256. */
    private HostTensor shard(Manifest.TensorEntry e, Manifest.Shard s, int[] shape) throws IOException {
        String path = fs.resolve(dir, s.file());
        Map<String, HostTensor> inFile = files.get(s.file());
        if (inFile == null) {
            if (!fs.exists(path)) throw new IllegalArgumentException("checkpoint " + dir + " lacks " + s.file() + ", which holds a shard of '" + e.name() + "'");
            files.put(s.file(), inFile = Safetensors.read(fs, path).tensors());
        }
        HostTensor h = inFile.get(e.name());
        if (h == null) throw new IllegalArgumentException(path + " lacks tensor '" + e.name() + "' listed in the manifest");
        if (!h.dtype().safetensorsName().equals(e.dtype()) || !Arrays.equals(h.shape(), shape))
            throw new IllegalArgumentException(path + ": tensor '" + e.name() + "' is " + h.dtype().safetensorsName() + Arrays.toString(h.shape())
                    + ", the manifest says " + e.dtype() + Arrays.toString(shape));
        if (verified.add(s)) {
            String actual = Checkpointer.sha256(h.data());
            if (!actual.equals(s.sha256())) {
                verified.remove(s);
                throw new IllegalArgumentException(path + ": tensor '" + e.name() + "' fails its SHA-256 check (manifest " + s.sha256().substring(0, 12)
                        + "…, file " + actual.substring(0, 12) + "…): the file is corrupt, refusing to load it");
            }
        }
        return h;
    }

    /** That every file the manifest names holds only tensors it lists (an edited file is refused). */
    public void checkFilesHoldOnlyListed() throws IOException {
        Map<String, Set<String>> listed = new HashMap<>();
        for (Manifest.TensorEntry e : manifest.tensors())
            for (Manifest.Shard s : e.shards()) listed.computeIfAbsent(s.file(), f -> new HashSet<>()).add(e.name());
        for (var f : listed.entrySet()) {
            String path = fs.resolve(dir, f.getKey());
            Map<String, HostTensor> inFile = files.containsKey(f.getKey()) ? files.get(f.getKey()) : Safetensors.read(fs, path).tensors();
            for (String name : inFile.keySet())
                if (!f.getValue().contains(name)) throw new IllegalArgumentException(path + " holds tensor '" + name + "' that the manifest does not list");
        }
    }

    private static long numel(int[] shape) {
        long n = 1;
        for (int s : shape) n *= s;
        return n;
    }

    private static boolean overlaps(int[] aLo, int[] aShape, int[] bLo, int[] bShape) {
        for (int d = 0; d < aLo.length; d++)
            if (Math.max(aLo[d], bLo[d]) >= Math.min(aLo[d] + aShape[d], bLo[d] + bShape[d])) return false;
        return true;
    }

    /** Copies the elements where box src (at srcLo of the whole) and box dst (at dstLo) overlap: row-major runs along the last dimension. */
    static void copyOverlap(ByteBuffer src, int[] srcShape, int[] srcLo, ByteBuffer dst, int[] dstShape, int[] dstLo, int elementBytes) {
        int n = srcShape.length;
        if (n == 0) {
            dst.put(0, src, 0, elementBytes);
            return;
        }
        int[] lo = new int[n], hi = new int[n];
        for (int d = 0; d < n; d++) {
            lo[d] = Math.max(srcLo[d], dstLo[d]);
            hi[d] = Math.min(srcLo[d] + srcShape[d], dstLo[d] + dstShape[d]);
        }
        int run = (hi[n - 1] - lo[n - 1]) * elementBytes;
        int[] at = lo.clone(); // the whole's index of the run's first element
        while (true) {
            long s = 0, t = 0;
            for (int d = 0; d < n; d++) {
                s = s * srcShape[d] + (at[d] - srcLo[d]);
                t = t * dstShape[d] + (at[d] - dstLo[d]);
            }
            dst.put(Math.toIntExact(t * elementBytes), src, Math.toIntExact(s * elementBytes), run);
            int d = n - 2;
            for (; d >= 0; d--) {
                if (++at[d] < hi[d]) break;
                at[d] = lo[d];
            }
            if (d < 0) return;
        }
    }
}
