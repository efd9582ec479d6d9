package dev.strata.trainer.cli;

import dev.strata.checkpoints.CheckpointReader;
import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.checkpoints.Manifest;
import dev.strata.checkpoints.Storage;
import dev.strata.config.JobConfig;
import dev.strata.runtime.HostTensor;
import dev.strata.trainer.train.TrainedModel;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "ckpt", mixinStandardHelpOptions = true, description = "Inspect, verify, compare, resume, reshard and convert checkpoints.",
        subcommands = {CkptCommand.Inspect.class, CkptCommand.Verify.class, CkptCommand.Diff.class, CkptResumeCommand.class, CkptReshardCommand.class,
                CkptHfCommands.ExportHf.class, CkptHfCommands.ImportHf.class})
final class CkptCommand extends CommandGroup {

    /** What the subcommands on one checkpoint take: a checkpoint, or a run directory standing for its latest checkpoint. */
    abstract static class OnCheckpoint implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "PATH", description = "checkpoint directory, or run directory for its latest") Path path;
        final Storage fs = new LocalStorage();

        abstract int run(String dir) throws IOException;

        @Override public Integer call() throws Exception { return run(TrainedModel.resolve(fs, path)); }
    }

    @Command(name = "inspect", mixinStandardHelpOptions = true, description = "A checkpoint's step, layout, tokens seen, losses and size; --tensors lists them.")
    static final class Inspect extends OnCheckpoint {
        @Option(names = "--tensors", description = "List every tensor: group, dtype, global shape, shards.") boolean tensors;

        @Override int run(String dir) throws IOException {
            Manifest m = Checkpointer.readManifest(fs, dir);
            Map<String, Object> l = m.layout(), metrics = m.metrics() == null ? Map.of() : m.metrics();
            System.out.printf(Locale.ROOT, "checkpoint %s%n  step %,d, written %s%n", dir, m.step(), m.createdAt());
            System.out.printf(Locale.ROOT, "  layout tp %s × pp %s × dp %s, zero %s: %s ranks, %d shard files%n", l.get("tp"), l.get("pp"), l.get("dp"),
                    l.get("zero"), l.get("ranks"), m.files().size());
            try {
                var tr = JobConfig.fromMap(m.config(), dir + "/" + Checkpointer.MANIFEST).training();
                long perStep = (long) tr.batchSize() * ((Number) l.get("dp")).intValue() * tr.seqLen() * tr.gradAccumSteps();
                System.out.printf(Locale.ROOT, "  tokens seen %,d (%,d a step)%n", perStep * m.step(), perStep);
            } catch (RuntimeException e) {
                System.out.println("  tokens seen: unknown (" + e.getMessage() + ")");
            }
            System.out.printf(Locale.ROOT, "  train loss %s, val loss %s%n  data position %s, schedule %s%n", metrics.get("train_loss"),
                    metrics.get("val_loss"), m.data(), m.schedule());
            long model = m.tensors().stream().filter(t -> t.group() == Manifest.Group.MODEL).count();
            System.out.printf(Locale.ROOT, "  %d tensors (%d model, %d optimizer), %s%n", m.tensors().size(), model, m.tensors().size() - model,
                    Checkpointer.size(m.totalBytes()));
            if (tensors) for (Manifest.TensorEntry t : m.tensors())
                System.out.printf(Locale.ROOT, "    %-9s %-52s %-4s %-14s %d shard(s)%n", t.group().name().toLowerCase(Locale.ROOT), t.name(), t.dtype(),
                        java.util.Arrays.toString(t.shape()), t.shards().size());
            return 0;
        }
    }

    @Command(name = "verify", mixinStandardHelpOptions = true,
            description = "Check the manifest's own checksum, every shard against its SHA-256, that the files hold nothing else, and that no value is NaN or infinite.")
    static final class Verify extends OnCheckpoint {
        @Override int run(String dir) throws IOException {
            CheckpointReader r = CheckpointReader.open(fs, dir);
            List<String> poisoned = new ArrayList<>();
            long shards = 0;
            for (Manifest.TensorEntry t : r.manifest().tensors()) {
                HostTensor h = r.region(t, -1, 0, 0);
                shards += t.shards().size();
                long bad = h.nonFiniteCount();
                if (bad > 0) poisoned.add(String.format(Locale.ROOT, "'%s' (%,d of %,d)", t.name(), bad, h.numel()));
            }
            r.checkFilesHoldOnlyListed();
            if (!poisoned.isEmpty())
                throw new IllegalArgumentException(dir + ": checksums match but " + poisoned.size() + " tensor(s) hold NaN or infinite values: "
                        + String.join(", ", poisoned.subList(0, Math.min(5, poisoned.size()))) + (poisoned.size() > 5 ? ", ..." : "")
                        + "; do not resume from it");
            System.out.printf(Locale.ROOT, "OK %s: step %d, %d tensors in %,d shards over %d files, %s, all checksums match, all values finite%n",
                    dir, r.manifest().step(), r.manifest().tensors().size(), shards, r.manifest().files().size(), Checkpointer.size(r.manifest().totalBytes()));
            return 0;
        }
    }

    @Command(name = "diff", mixinStandardHelpOptions = true,
            description = "Which tensors of two checkpoints (of any layouts) differ, and by how much; exit code 1 when any does.")
    static final class Diff implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "A") Path a;
        @Parameters(index = "1", paramLabel = "B") Path b;
        @Option(names = "--tolerance", defaultValue = "0", description = "Largest absolute difference still counted equal (default ${DEFAULT-VALUE}).") double tolerance;

        @Override public Integer call() throws Exception {
            Storage fs = new LocalStorage();
            var x = Checkpointer.load(fs, TrainedModel.resolve(fs, a));
            var y = Checkpointer.load(fs, TrainedModel.resolve(fs, b));
            List<String> lines = new ArrayList<>();
            int same = 0;
            for (String group : new String[] {"model", "optimizer"}) {
                Map<String, HostTensor> p = group.equals("model") ? x.model() : x.optimizer(), q = group.equals("model") ? y.model() : y.optimizer();
                for (String name : p.keySet()) if (!q.containsKey(name)) lines.add("  only in A: " + group + " " + name);
                for (String name : q.keySet()) if (!p.containsKey(name)) lines.add("  only in B: " + group + " " + name);
                for (var e : p.entrySet()) {
                    HostTensor u = e.getValue(), v = q.get(e.getKey());
                    if (v == null) continue;
                    if (!java.util.Arrays.equals(u.shape(), v.shape())) {
                        lines.add(String.format(Locale.ROOT, "  %s %s: shape %s vs %s", group, e.getKey(), java.util.Arrays.toString(u.shape()),
                                java.util.Arrays.toString(v.shape())));
                        continue;
                    }
                    double[] s = u.toDoubles(), t = v.toDoubles();
                    double worst = 0, scale = 0;
                    for (int i = 0; i < s.length; i++) {
                        worst = Math.max(worst, Math.abs(s[i] - t[i]));
                        scale = Math.max(scale, Math.abs(s[i]));
                    }
                    if (worst > tolerance || Double.isNaN(worst))
                        lines.add(String.format(Locale.ROOT, "  %s %s: max |A-B| %.3e (%.3e of max |A|)", group, e.getKey(), worst, scale > 0 ? worst / scale : worst));
                    else same++;
                }
            }
            System.out.printf(Locale.ROOT, "%s vs %s: step %d vs %d; %d tensors equal%s, %d differ%n", x.dir(), y.dir(), x.manifest().step(), y.manifest().step(),
                    same, tolerance > 0 ? " within " + tolerance : "", lines.size());
            lines.forEach(System.out::println);
            return lines.isEmpty() ? 0 : 1;
        }
    }
}
