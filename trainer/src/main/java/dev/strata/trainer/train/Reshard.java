package dev.strata.trainer.train;

import dev.strata.checkpoints.CheckpointReader;
import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.Manifest;
import dev.strata.checkpoints.Storage;
import dev.strata.config.JobConfig;
import dev.strata.parallel.DeviceMesh;
import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.InProcessCommunicator;
import dev.strata.runtime.DType;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * {@code strata ckpt reshard}: a checkpoint rewritten offline as the ranks of another layout write it, so each of
 * them reads one file (any layout loads any checkpoint as it is; this is for moving between clusters). One rank's
 * part of the model is built at a time, on the CPU, and loaded just as a resuming rank loads it; the optimizer
 * state is written by the first replica's ranks. The global batch stays: batch_size follows dp.
 */
public final class Reshard {
    private Reshard() {}

    /** The layout to write: tp × pp × dp. */
    public record Layout(int tp, int pp, int dp) {
        /** "tp=2,pp=2,dp=1"; what it does not name stays 1. */
        public static Layout parse(String text) {
            Map<String, Integer> v = new java.util.HashMap<>(Map.of("tp", 1, "pp", 1, "dp", 1));
            for (String part : text.split(",")) {
                String[] kv = part.trim().split("=");
                if (kv.length != 2 || !v.containsKey(kv[0].trim()) || !kv[1].trim().matches("[1-9][0-9]*"))
                    throw new IllegalArgumentException("--to '" + text + "': expected tp=N,pp=N,dp=N (each 1 or more), e.g. --to tp=2,pp=2,dp=1");
                v.put(kv[0].trim(), Integer.parseInt(kv[1].trim()));
            }
            return new Layout(v.get("tp"), v.get("pp"), v.get("dp"));
        }
    }

    /** Writes from's checkpoint at layout into the new checkpoints directory out; returns the checkpoint's directory. */
    public static String run(Storage fs, String from, Layout to, String out) throws IOException {
        if (fs.exists(out)) throw new IllegalArgumentException("--out " + out + " already exists; give a new directory");
        CheckpointReader ckpt = CheckpointReader.open(fs, from);
        Manifest m = ckpt.manifest();
        JobConfig job = JobConfig.fromMap(m.config(), from + "/" + Checkpointer.MANIFEST);
        JobConfig at = job.withOverrides(overrides(job, to));
        ModelConfig cfg = Models.config(at.model());
        if (to.tp() > 1) Models.checkTensorParallel(at, cfg, to.tp());
        if (to.pp() > 1) Pipeline.check(at, cfg);
        DType dtype = job.dtype().equals("f64") ? DType.F64 : DType.F32; // the stored parameters' and moments' dtype
        DeviceMesh mesh = new DeviceMesh(to.dp(), to.pp(), to.tp());
        Checkpointer target = new Checkpointer(fs, out, 1, 0);
        List<Communicator> tp = InProcessCommunicator.group("tp", to.tp(), Duration.ofSeconds(10)); // sizes and ranks only: nothing is exchanged
        try {
            String dir = null;
            for (int index = mesh.size() - 1; index >= 0; index--) { // rank 0 last: it commits once every other rank has listed its shards
                var c = mesh.coordinates(index);
                Rank rank = new Rank(index, mesh, null, to.tp() == 1 ? null : tp.get(c.tp()), false, null, CpuBackend.INSTANCE);
                Checkpointer.State state = index > 0 ? null : new Checkpointer.State(TrainingState.layout(at), at.toMap(), m.data(), m.rng(), m.schedule(), m.metrics());
                if (c.dp() > 0) { // the first replica's ranks write everything
                    dir = target.save(m.step(), index, mesh.size(), List.of(), state, Duration.ZERO);
                    continue;
                }
                Transformer model = Models.model(at, cfg, CpuBackend.INSTANCE, dtype, rank.tensorParallel(), Models.stage(at, cfg, c.pp(), to.pp()));
                var tr = at.training();
                try (AdamW opt = new AdamW(model.parameters(), new AdamW.Settings(tr.beta1(), tr.beta2(), tr.eps(), tr.weightDecay(), tr.decayEmbeddings()),
                        GradientSync.NONE); HostSnapshot snapshot = new HostSnapshot(CpuBackend.INSTANCE)) {
                    TrainingState.restore(model, opt, ckpt);
                    var pieces = TrainingState.pieces(model, opt, rank, to.pp() > 1 ? Pipeline.tiedCopy(model) : null, snapshot);
                    dir = target.save(m.step(), index, mesh.size(), pieces, state, Duration.ZERO);
                }
            }
            return dir;
        } finally {
            tp.forEach(Communicator::close);
        }
    }

    /** The job's settings at layout: its tp, pp, dp, and a batch_size that keeps the global batch. */
    private static String overrides(JobConfig job, Layout to) {
        var p = job.parallel();
        long rows = (long) job.training().batchSize() * p.dp();
        if (rows % to.dp() != 0)
            throw new IllegalArgumentException("--to dp=" + to.dp() + " does not divide the checkpoint's global batch of " + rows
                    + " rows (training.batch_size " + job.training().batchSize() + " × parallel.dp " + p.dp() + ")");
        boolean interleaved = p.schedule().equals("interleaved");
        return "parallel { tp = " + to.tp() + ", pp = " + to.pp() + ", dp = " + to.dp() + ", pp_layers = []"
                + (interleaved && to.pp() == 1 ? ", schedule = 1f1b, virtual_stages = 1" : "") + " }\ntraining.batch_size = " + rows / to.dp();
    }
}
