package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * strata ckpt on a checkpoint written at tp 2 × pp 2 (four ranks' shards): inspect's summary, verify, reshard to
 * one rank (the same values: diff finds none), export to Hugging Face and import back, resume into a new run
 * directory at another layout; and each refusal is one line naming what is wrong.
 */
class CkptToolTest {
    @TempDir static Path data;

    @BeforeAll
    static void writeData() throws Exception { TrainerTest.writeData(data); }

    record Ran(int rc, String out, String err) {}

    static Ran ckpt(String... args) {
        var err = new StringWriter();
        var cli = dev.strata.trainer.cli.Main.commandLine();
        cli.setErr(new PrintWriter(err, true));
        PrintStream console = System.out;
        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        System.setOut(new PrintStream(printed, true));
        try {
            String[] all = new String[args.length + 1];
            all[0] = "ckpt";
            System.arraycopy(args, 0, all, 1, args.length);
            return new Ran(cli.execute(all), printed.toString(), err.toString());
        } finally {
            System.setOut(console);
        }
    }

    @Test
    void theCheckpointToolOnAShardedCheckpoint(@TempDir Path runs) throws Exception {
        Path run = runs.resolve("run");
        new Trainer(PipelineParallelTest.job(data, run, "llama", 2, 2, 1, 0, "1f1b", false).withOverrides("checkpoint { every = 5, keep_last = 3 }"),
                TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        String five = run.resolve("checkpoints/step-00000005").toString(), ten = run.resolve("checkpoints/step-00000010").toString();

        Ran inspect = ckpt("inspect", run.toString());
        assertEquals(0, inspect.rc(), inspect.err());
        assertTrue(inspect.out().contains("step 10,") && inspect.out().contains("layout tp 2 × pp 2 × dp 1, zero 0: 4 ranks"), inspect.out());
        assertTrue(inspect.out().contains("tokens seen 2,560 (256 a step)"), inspect.out());
        assertTrue(inspect.out().contains("train loss"), inspect.out());
        Ran tensors = ckpt("inspect", "--tensors", ten);
        assertTrue(tensors.out().contains("layers.3.attention.wq.weight") && tensors.out().contains("2 shard(s)"), tensors.out());
        Ran verify = ckpt("verify", ten);
        assertTrue(verify.rc() == 0 && verify.out().contains("all checksums match"), verify.out() + verify.err());

        Path one = runs.resolve("one");
        Ran reshard = ckpt("reshard", ten, "--to", "tp=1,pp=1,dp=1", "--out", one.toString());
        assertEquals(0, reshard.rc(), reshard.err());
        var manifest = Checkpointer.readManifest(new LocalStorage(), one.resolve("step-00000010").toString());
        assertEquals(java.util.List.of("model-00000.safetensors", "optimizer-00000.safetensors"), manifest.files(), "one rank's files");
        Ran same = ckpt("diff", ten, one.resolve("step-00000010").toString());
        assertEquals(0, same.rc(), same.out());
        Ran differ = ckpt("diff", five, ten);
        assertEquals(1, differ.rc(), differ.out());
        assertTrue(differ.out().contains("model layers.0.attention.wq.weight: max |A-B|"), differ.out());

        Path hf = runs.resolve("hf"), back = runs.resolve("back");
        assertEquals(0, ckpt("export-hf", ten, "--out", hf.toString()).rc());
        Ran imported = ckpt("import-hf", hf.toString(), "--out", back.toString());
        assertEquals(0, imported.rc(), imported.err());
        Ran models = ckpt("diff", "--tolerance", "1e-6", ten, back.resolve("step-00000000").toString()); // exported as f32, trained in f64
        assertTrue(models.out().contains("tensors equal within 1.0E-6"), models.out());
        assertTrue(models.out().lines().filter(l -> l.startsWith("  model ")).findAny().isEmpty(), "the weights come back as they were: " + models.out());

        Path moved = runs.resolve("moved");
        Ran resumed = ckpt("resume", five, "--set", "run_dir=\"" + moved + "\"", "--set", "parallel.tp=1", "--set", "parallel.pp=1", "--set", "training.steps=10");
        assertEquals(0, resumed.rc(), resumed.out() + resumed.err());
        assertTrue(resumed.out().contains("done: step 10"), resumed.out());
        var losses = TrainerTest.losses(moved);
        assertEquals(5, losses.size(), "metrics from step 6 on");
        var original = TrainerTest.losses(run).subList(5, 10);
        for (int i = 0; i < 5; i++) assertEquals(original.get(i), losses.get(i), 1e-10 * Math.abs(original.get(i)), "step " + (6 + i));

        // refusals: one line each, naming what is wrong
        assertRefused(ckpt("reshard", ten, "--to", "tp=3", "--out", runs.resolve("x").toString()), "parallel.tp = 3 does not divide model.n_heads");
        assertRefused(ckpt("reshard", ten, "--to", "tp=two", "--out", runs.resolve("x").toString()), "expected tp=N,pp=N,dp=N");
        assertRefused(ckpt("reshard", ten, "--to", "tp=1", "--out", one.toString()), "already exists");
        assertRefused(ckpt("resume", five), "is not the latest checkpoint of its run");
        assertRefused(ckpt("inspect", runs.resolve("nothing").toString()), "does not exist");
        Files.writeString(Path.of(ten, Checkpointer.MANIFEST), Files.readString(Path.of(ten, Checkpointer.MANIFEST)).replace("\"step\" : 10", "\"step\" : 11"));
        assertRefused(ckpt("verify", ten), "fails its own SHA-256 check");
        Files.delete(Path.of(five, "model-00003.safetensors"));
        assertRefused(ckpt("verify", five), "lacks model-00003.safetensors, which holds a shard of");
        assertRefused(ckpt("export-hf", five, "--out", runs.resolve("hf2").toString()), "lacks model-00003.safetensors");
    }

    static void assertRefused(Ran r, String says) {
        assertEquals(2, r.rc(), r.out() + r.err());
        assertTrue(r.err().contains(says) && r.err().strip().lines().count() == 1, "one line saying '" + says + "': " + r.err());
    }
}
