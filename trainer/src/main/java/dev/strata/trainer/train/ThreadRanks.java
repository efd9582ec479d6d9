package dev.strata.trainer.train;

import dev.strata.config.JobConfig;
import dev.strata.parallel.DataParallelSync;
import dev.strata.parallel.comm.CollectiveException;
import dev.strata.parallel.DeviceMesh;
import dev.strata.parallel.MeshComms;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * {@code parallel.launcher = threads}: each rank of the dp × tp mesh a thread of this JVM with its own part of the
 * model, its groups' tensors moving through in-process communicators. Rank 0 prints and writes the run; when any rank fails
 * the communicators close, so the others stop at their next collective instead of waiting out the timeout.
 */
final class ThreadRanks {
    private ThreadRanks() {}

    static Trainer.Result run(JobConfig job, PrintStream out, RunDirectory.Mode mode, long exitAfter, boolean allowChanges) throws IOException {
        var p = job.parallel();
        DeviceMesh mesh = new DeviceMesh(p.dp(), p.pp(), p.tp());
        List<MeshComms> comms = MeshComms.inProcess(mesh, p.timeout());
        ExecutorService pool = Executors.newFixedThreadPool(mesh.size(), r -> {
            Thread t = new Thread(r);
            t.setDaemon(true);
            return t;
        });
        PrintStream silent = new PrintStream(OutputStream.nullOutputStream());
        try {
            List<Future<Trainer.Result>> ranks = new ArrayList<>();
            for (MeshComms c : comms) {
                Rank rank = new Rank(c.rank(), mesh, c.dp() == null ? null : new DataParallelSync(c.dp(), p.zero(), p.bucketBytes()), c.tp(), p.sequenceParallel(), c.pp(), null);
                ranks.add(pool.submit(() -> {
                    Thread.currentThread().setName("rank-" + rank.index());
                    try {
                        return new Trainer(job, rank.index() == 0 ? out : silent).run(mode, exitAfter, allowChanges, rank);
                    } catch (Throwable e) {
                        comms.forEach(MeshComms::close); // the others' next collective fails at once
                        throw e;
                    }
                }));
            }
            Throwable first = null;
            Trainer.Result result = null;
            for (Future<Trainer.Result> f : ranks) {
                try {
                    Trainer.Result r = f.get();
                    if (result == null) result = r;
                } catch (ExecutionException e) {
                    // The error that started it beats the collectives it broke on the other ranks.
                    if (first == null || first instanceof CollectiveException && !(e.getCause() instanceof CollectiveException)) first = e.getCause();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while waiting for the ranks");
                }
            }
            if (first instanceof IOException io) throw io;
            if (first instanceof RuntimeException re) throw re;
            if (first != null) throw new IllegalStateException(first);
            return result;
        } finally {
            pool.shutdownNow();
            comms.forEach(MeshComms::close);
        }
    }
}
