package dev.strata.trainer.train;

import dev.strata.checkpoints.BackgroundSaves;
import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.checkpoints.Storage;
import dev.strata.config.JobConfig;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.runtime.nn.AdamW;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import dev.strata.trainer.model.Initializer;
import java.io.IOException;
import java.io.PrintStream;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code strata bench checkpoint}: what a checkpoint of a preset model (weights and AdamW moments, as a training
 * rank holds them) costs training: the synchronous save (snapshot, write with checksums, commit: training waits for
 * all of it) against the asynchronous one's pause (the snapshot into pinned host memory) and its background write.
 */
public final class CheckpointBench {
    private CheckpointBench() {}

    public static void run(JobConfig job, String modelName, String dir, int saves, PrintStream out) throws IOException {
        Backend backend = Models.backend(job);
        DType dtype = Models.dtype(job, backend);
        ModelConfig cfg = Models.config(job.model());
        Transformer model = Models.model(job, cfg, backend, dtype);
        Initializer.initialize(model, job.seed());
        Storage fs = new LocalStorage();
        if (fs.exists(dir)) throw new IllegalArgumentException("--dir " + dir + " already exists; give a new directory (it is removed afterwards)");
        Checkpointer checkpoints = new Checkpointer(fs, dir, 1, 0);
        String device = backend instanceof CudaBackend cuda ? cuda.deviceName() : "CPU";
        try (AdamW opt = new AdamW(model.parameters(), new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, false));
             HostSnapshot snapshot = new HostSnapshot(backend); BackgroundSaves async = new BackgroundSaves(true)) {
            Checkpointer.State state = new Checkpointer.State(Map.of(), Map.of("epoch", 0, "cursor", 0), Map.of(), Map.of(), Map.of());
            long t0 = System.nanoTime();
            List<Checkpointer.Piece> pieces = TrainingState.pieces(model, opt, Rank.SINGLE, null, snapshot);
            double first = seconds(t0);
            long bytes = pieces.stream().mapToLong(p -> p.data().byteSize()).sum();
            out.printf(Locale.ROOT, "bench checkpoint: %s, %,d parameters, %s on %s; %s a save; first snapshot %.2f s (pins the host memory once)%n",
                    modelName, cfg.parameterCount(), dtype.configName(), device, Checkpointer.size(bytes), first);

            t0 = System.nanoTime();
            pieces = TrainingState.pieces(model, opt, Rank.SINGLE, null, snapshot);
            checkpoints.save(1, 0, 1, pieces, state, Duration.ZERO);
            double sync = seconds(t0);

            double[] pause = new double[saves], write = new double[saves];
            for (int i = 0; i < saves; i++) {
                long step = 2 + i;
                t0 = System.nanoTime();
                List<Checkpointer.Piece> mine = TrainingState.pieces(model, opt, Rank.SINGLE, null, snapshot);
                pause[i] = seconds(t0);
                async.submit(step, bytes, () -> checkpoints.save(step, 0, 1, mine, state, Duration.ZERO));
                write[i] = async.finish().seconds(); // the next snapshot reuses the memory: it waits for this write
            }
            double p = median(pause), w = median(write);
            out.printf(Locale.ROOT, "synchronous save %.2f s (%.2f GB/s); asynchronous: training pauses %.3f s (median of %d; %.1f GB/s into pinned memory), "
                    + "%.2f s written in the background: a pause %.0fx shorter%n", sync, bytes / sync / 1e9, p, saves, bytes / p / 1e9, w, sync / p);
            out.printf(Locale.ROOT, "BENCH {\"bench\": \"checkpoint\", \"model\": \"%s\", \"bytes\": %d, \"first_snapshot_s\": %.4f, \"sync_s\": %.4f, "
                    + "\"pause_s\": %.4f, \"write_s\": %.4f, \"pauses\": %s}%n", modelName, bytes, first, sync, p, w, Arrays.toString(pause));
        } finally {
            fs.delete(dir);
        }
    }

    private static double seconds(long since) { return (System.nanoTime() - since) / 1e9; }

    private static double median(double[] xs) {
        double[] s = xs.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }
}
