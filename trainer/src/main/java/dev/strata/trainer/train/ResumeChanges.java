package dev.strata.trainer.train;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The settings a resumed run keeps unless told otherwise: changing any of them mid-run changes what the run computes
 * (the data it sees, the schedule it follows), so {@code --resume} names the change and asks for {@code --allow-changes}.
 */
final class ResumeChanges {
    static final List<String> GUARDED = List.of("data.dir", "seed", "training.seq_len",
            "training.grad_accum_steps", "training.lr", "training.min_lr", "training.warmup_steps", "training.weight_decay");

    private ResumeChanges() {}

    /** Each guarded key whose value differs, with [before, now]. */
    static Map<String, List<Object>> between(Map<String, Object> before, Map<String, Object> now) {
        Map<String, List<Object>> changed = new LinkedHashMap<>();
        // The batch that matters is the global one: dp may change as long as dp × batch_size does not.
        long batchBefore = globalBatch(before), batchNow = globalBatch(now);
        if (batchBefore != batchNow) changed.put("training.batch_size x parallel.dp", java.util.Arrays.asList(batchBefore, batchNow));
        for (String key : GUARDED) {
            Object a = lookup(before, key), b = lookup(now, key);
            if (!same(a, b)) changed.put(key, java.util.Arrays.asList(a, b));
        }
        return changed;
    }

    /** "training.lr 0.002 -> 0.001, data.dir a -> b". */
    static String describe(Map<String, List<Object>> changes) {
        StringBuilder sb = new StringBuilder();
        changes.forEach((k, v) -> sb.append(sb.isEmpty() ? "" : ", ").append(k).append(' ').append(v.get(0)).append(" -> ").append(v.get(1)));
        return sb.toString();
    }

    private static boolean same(Object a, Object b) {
        if (a instanceof Number x && b instanceof Number y) return x.doubleValue() == y.doubleValue();
        return java.util.Objects.equals(a, b);
    }

    private static long globalBatch(Map<String, Object> settings) {
        Object b = lookup(settings, "training.batch_size"), dp = lookup(settings, "parallel.dp");
        return (b instanceof Number n ? n.longValue() : 0) * (dp instanceof Number d ? d.longValue() : 1);
    }

    private static Object lookup(Map<String, Object> m, String key) {
        Object at = m;
        for (String part : key.split("\\.")) at = at instanceof Map<?, ?> map ? map.get(part) : null;
        return at;
    }
}
