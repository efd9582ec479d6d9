package dev.strata.checkpoints;

import java.util.List;
import java.util.Map;

/**
 * manifest.json of a checkpoint: what step it is, the layout that wrote it, the job's settings, the data position,
 * RNG and schedule state, and every tensor's global shape and dtype with the shards that hold it (file, slice,
 * SHA-256). {@code manifestSha256} is the SHA-256 of the file itself with that field's value written as 64 zeros,
 * so an edit anywhere in it is caught. Written last: a directory without it was never committed.
 *
 * @param layout how the writing run was spread: tp, pp, dp, zero and its rank count
 */
public record Manifest(int format, String manifestSha256, long step, String createdAt, Map<String, Object> layout, Map<String, Object> config,
                       Map<String, Object> data, Map<String, Object> rng, Map<String, Object> schedule, Map<String, Object> metrics,
                       List<TensorEntry> tensors) {
    public static final int FORMAT = 3;

    /** Model parameters, or the optimizer's tensors (moments, step count, layers' step state). */
    public enum Group { MODEL, OPTIMIZER }

    /** A tensor of the checkpoint, whole: its group, dtype, global shape and the shards that together hold all of it. */
    public record TensorEntry(String name, Group group, String dtype, int[] shape, List<Shard> shards) {
        public long byteSize() {
            long n = dev.strata.runtime.DType.fromSafetensorsName(dtype).byteSize();
            for (int s : shape) n *= s;
            return n;
        }
    }

    /**
     * The part of a tensor that one file holds under the tensor's name: elements [start, start + length) along
     * dimension dim and all of every other dimension (dim -1: the whole tensor).
     */
    public record Shard(String file, int dim, int start, int length, String sha256) {}

    public long totalBytes() { return tensors.stream().mapToLong(TensorEntry::byteSize).sum(); }

    /** The files the shards live in, each once. */
    public List<String> files() { return tensors.stream().flatMap(t -> t.shards().stream()).map(Shard::file).distinct().sorted().toList(); }
}
