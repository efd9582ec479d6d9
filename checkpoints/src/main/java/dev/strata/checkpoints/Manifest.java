package dev.strata.checkpoints;

import java.util.List;
import java.util.Map;

/**
 * manifest.json of a checkpoint: what step it is, the job's settings, the data position, RNG and schedule state,
 * and every tensor with the file holding it and the SHA-256 of its bytes. {@code manifestSha256} is the SHA-256 of
 * the file itself with that field's value written as 64 zeros, so an edit anywhere in it is caught (format 2 on).
 */
public record Manifest(int format, String manifestSha256, long step, String createdAt, Map<String, Object> config, Map<String, Object> data,
                       Map<String, Object> rng, Map<String, Object> schedule, Map<String, Object> metrics,
                       List<TensorEntry> tensors) {
    public static final int FORMAT = 2;

    public record TensorEntry(String name, String file, String dtype, int[] shape, String sha256) {}

    public long totalBytes() {
        long total = 0;
        for (TensorEntry t : tensors) {
            long n = dev.strata.runtime.DType.fromSafetensorsName(t.dtype()).byteSize();
            for (int s : t.shape()) n *= s;
            total += n;
        }
        return total;
    }
}
