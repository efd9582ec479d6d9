package dev.strata.config;

import com.typesafe.config.ConfigValueType;
import java.time.Duration;
import java.util.List;

/**
 * How the job is spread over ranks: data-parallel replicas and tensor-parallel ranks per replica (with the residual stream's rows sharded over them
 * under sequence parallelism), pipeline stages (their layer counts, empty: balanced; the schedule; chunks per stage, interleaved), the ZeRO level (0: replicated optimizer state; 1: sharded
 * over dp; 2: gradients reduced to their shard's owner too), the gradient bucket size, how ranks are started, which
 * GPUs they take (empty: every visible one), the rendezvous port (0: any free one), how long a collective may wait.
 */
public record ParallelSpec(int dp, int tp, boolean sequenceParallel, int pp, List<Integer> ppLayers, String schedule, int virtualStages, int zero, double bucketMb, String launcher, List<Integer> gpus, int port, Duration timeout) {
    public ParallelSpec {
        gpus = List.copyOf(gpus);
        ppLayers = List.copyOf(ppLayers);
    }

    /** How many ranks the job runs on: dp × pp × tp. */
    public int worldSize() { return dp * pp * tp; }

    /** How many layer ranges the model is cut into: pp stages of virtual_stages chunks each. */
    public int chunks() { return pp * virtualStages; }

    /** The bucket size in bytes. */
    public long bucketBytes() { return Math.max(1, Math.round(bucketMb * (1 << 20))); }

    static ParallelSpec from(Fields f) {
        var p = new ParallelSpec(f.positive("parallel.dp"), f.positive("parallel.tp"), f.bool("parallel.sequence_parallel"),
                f.positive("parallel.pp"), f.integers("parallel.pp_layers"), f.oneOf("parallel.schedule", "gpipe", "1f1b", "interleaved", "zero_bubble"),
                f.positive("parallel.virtual_stages"), f.nonNegative("parallel.zero"), f.number("parallel.bucket_mb"),
                f.oneOf("parallel.launcher", "threads", "processes"), gpus(f), f.nonNegative("parallel.port"), f.duration("parallel.timeout"));
        f.require(!p.sequenceParallel || p.tp > 1, "parallel.sequence_parallel = true shards the rows over the tensor-parallel ranks, "
                + "but parallel.tp = 1; set parallel.tp = 2 or more, or sequence_parallel = false");
        boolean interleaved = p.schedule.equals("interleaved");
        f.require(!interleaved || p.virtualStages >= 2, "parallel.schedule = interleaved needs parallel.virtual_stages = 2 or more layer chunks "
                + "per stage, got " + p.virtualStages);
        f.require(interleaved || p.virtualStages == 1, "parallel.virtual_stages = " + p.virtualStages + " splits stages into chunks that only "
                + "parallel.schedule = interleaved runs; set it, or virtual_stages = 1");
        f.require(!interleaved || p.pp > 1, "parallel.schedule = interleaved cycles micro-batches through pipeline stages, but parallel.pp = 1; "
                + "set parallel.pp = 2 or more");
        f.require(p.ppLayers.isEmpty() || p.ppLayers.size() == p.chunks() && p.ppLayers.stream().allMatch(n -> n >= 1),
                "parallel.pp_layers must list " + p.chunks() + " layer counts of 1 or more, one per " + (p.virtualStages > 1 ? "chunk (parallel.pp = " + p.pp
                        + " x virtual_stages = " + p.virtualStages : "pipeline stage (parallel.pp = " + p.pp) + "), or be [] to balance them; got " + p.ppLayers);
        f.require(p.zero <= 2, "parallel.zero must be 0, 1 or 2, got " + p.zero);
        f.require(p.bucketMb > 0 && p.bucketMb <= 4096, "parallel.bucket_mb must lie in (0, 4096], got " + p.bucketMb);
        f.require(p.port <= 65535, "parallel.port must be a TCP port (1-65535), or 0 for any free one, got " + p.port);
        f.require(p.timeout.toMillis() >= 100, "parallel.timeout must be at least 100 ms, got " + p.timeout.toMillis() + " ms");
        return p;
    }

    /** "all", or a list of distinct device indices. */
    private static List<Integer> gpus(Fields f) {
        if (f.type("parallel.gpus") == ConfigValueType.STRING) {
            f.require(f.string("parallel.gpus").equals("all"), "parallel.gpus must be \"all\" or a list of GPU indices like [0, 1], got \""
                    + f.string("parallel.gpus") + "\"");
            return List.of();
        }
        List<Integer> gpus = f.integers("parallel.gpus");
        f.require(!gpus.isEmpty() && gpus.stream().allMatch(g -> g >= 0) && gpus.stream().distinct().count() == gpus.size(),
                "parallel.gpus must be \"all\" or a list of distinct GPU indices like [0, 1], got " + gpus);
        return gpus;
    }
}
