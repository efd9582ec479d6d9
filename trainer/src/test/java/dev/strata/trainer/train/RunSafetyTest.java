package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.strata.checkpoints.Checkpointer;
import dev.strata.checkpoints.LocalStorage;
import dev.strata.config.JobConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a run may delete, what it may write as a checkpoint, and what a resume refuses. */
class RunSafetyTest {
    @TempDir static Path data, shared;

    @BeforeAll
    static void writeData() throws Exception {
        TrainerTest.writeData(data);
        TrainerTest.writeData(shared);
    }

    static JobConfig job(Path runDir, int steps) { return TrainerTest.job(runDir, data, "gpt2", steps); }

    @Test
    void overwriteRemovesOnlyWhatARunWrote(@TempDir Path runs) throws Exception {
        Path dir = runs.resolve("run");
        new Trainer(job(dir, 5), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        Files.writeString(dir.resolve("notes.md"), "my notes");
        Files.createDirectories(dir.resolve("sibling-run/checkpoints"));
        Files.writeString(dir.resolve("train.log"), "old log");
        new Trainer(job(dir, 5), TrainerTest.quiet()).run(RunDirectory.Mode.OVERWRITE, 0);
        assertEquals("my notes", Files.readString(dir.resolve("notes.md")));
        assertTrue(Files.isDirectory(dir.resolve("sibling-run/checkpoints")), "a sibling run is not a file of this run");
        assertFalse(Files.exists(dir.resolve("train.log")), "the run's own log went");
        assertEquals(5, TrainerTest.losses(dir).size(), "metrics.jsonl started again");
    }

    @Test
    void overwriteRefusesTheCurrentHomeRootAndDataDirectories(@TempDir Path runs) {
        for (String runDir : List.of("", "/", ".", System.getProperty("user.home"), data.toString(), data.getParent().toString())) {
            JobConfig j = job(Path.of("x"), 2).withOverrides("run_dir = \"" + runDir + "\"");
            var e = assertThrows(IllegalArgumentException.class, () -> new Trainer(j, TrainerTest.quiet()).run(RunDirectory.Mode.OVERWRITE, 0));
            assertTrue(e.getMessage().contains("run_dir"), runDir + ": " + e.getMessage());
        }
        assertTrue(Files.exists(data.resolve("train-00000.bin")), "the data survived");
    }

    @Test
    void aBlowUpWritesNoPoisonedCheckpointAndKeepsTheGoodOnes(@TempDir Path runs) throws Exception {
        Path dir = runs.resolve("run");
        new Trainer(job(dir, 10), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        var before = Checkpointer.ofRun(new LocalStorage(), dir.toString(), 2).list();
        JobConfig blowUp = job(dir, 40).withOverrides("training { lr = 1e30, min_lr = 1e29 }\ncheckpoint { every = 1, keep_last = 2 }");
        assertThrows(IllegalStateException.class, () -> new Trainer(blowUp, TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0, true));
        var fs = new LocalStorage();
        for (String c : Checkpointer.ofRun(fs, dir.toString(), 2).list()) {
            var ckpt = Checkpointer.load(fs, c);
            ckpt.model().forEach((name, t) -> assertEquals(0, t.nonFiniteCount(), c + " " + name));
        }
        assertTrue(Checkpointer.ofRun(fs, dir.toString(), 2).list().containsAll(before.subList(before.size() - 1, before.size()))
                        || Checkpointer.ofRun(fs, dir.toString(), 2).latest().isPresent(), "a finite checkpoint remains");
        String metrics = Files.readString(dir.resolve(RunDirectory.METRICS));
        assertTrue(metrics.contains("\"skipped\":true"), "the skipped steps are recorded");
    }

    @Test
    void resumeRefusesChangedSettingsAndFinishedRunsAndKeepsOneRecordPerStep(@TempDir Path runs) throws Exception {
        Path dir = runs.resolve("run");
        new Trainer(job(dir, 10), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 7); // checkpoints at 5 and 7
        // A crash after step 9 left records of steps 8 and 9 that the resumed run will write again.
        Files.writeString(dir.resolve(RunDirectory.METRICS), "{\"step\":8,\"loss\":1.0}\n{\"step\":9,\"lo", java.nio.file.StandardOpenOption.APPEND);
        for (String change : List.of("training.batch_size = 2", "training.seq_len = 8", "training.lr = 1e-3", "data.dir = \"" + shared + "\"")) {
            var e = assertThrows(IllegalArgumentException.class,
                    () -> new Trainer(job(dir, 10).withOverrides(change), TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0));
            assertTrue(e.getMessage().contains(change.substring(0, change.indexOf(' '))) && e.getMessage().contains("--allow-changes"), e.getMessage());
        }
        new Trainer(job(dir, 10).withOverrides("training.lr = 2e-3"), TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0, true);
        ObjectMapper json = new ObjectMapper();
        List<Long> steps = Files.readAllLines(dir.resolve(RunDirectory.METRICS)).stream().map(l -> {
            try { return json.readTree(l); } catch (Exception e) { throw new AssertionError(l); }
        }).filter(n -> n.has("loss")).map(n -> n.get("step").asLong()).toList();
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L, 9L, 10L), steps, "one record per step");
        assertTrue(Files.readString(dir.resolve(RunDirectory.METRICS)).contains("resumed_with_changes"));
        var done = assertThrows(IllegalArgumentException.class,
                () -> new Trainer(job(dir, 10).withOverrides("training.lr = 2e-3"), TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0));
        assertTrue(done.getMessage().contains("finished"), done.getMessage());
    }

    @Test
    void anEditedManifestIsRefusedByVerifyAndResume(@TempDir Path runs) throws Exception {
        Path dir = runs.resolve("run");
        new Trainer(job(dir, 10), TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 5);
        Path manifest = dir.resolve("checkpoints/step-00000005/manifest.json");
        String original = Files.readString(manifest);
        for (String[] edit : new String[][] {{"\"step\" : 5", "\"step\" : 3"}, {"\"F32\"", "\"F64\""}, {"\"cursor\" : ", "\"cursor\" : 1"}}) {
            assertTrue(original.contains(edit[0]), edit[0]);
            Files.writeString(manifest, original.replaceFirst(java.util.regex.Pattern.quote(edit[0]), edit[1]));
            var e = assertThrows(IllegalArgumentException.class,
                    () -> new Trainer(job(dir, 10), TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0));
            assertTrue(e.getMessage().contains("manifest.json") && e.getMessage().contains("SHA-256"), e.getMessage());
        }
        Files.writeString(manifest, original);
        new Trainer(job(dir, 10), TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0);
    }

    @Test
    void aCheckpointWhoseDataPositionLiesPastTheDataIsNamed(@TempDir Path runs) throws Exception {
        Path dir = runs.resolve("run"), small = runs.resolve("small");
        JobConfig j = job(dir, 30).withOverrides("data.dir = \"" + small + "\"");
        Files.createDirectories(small);
        TrainerTest.writeData(small);
        new Trainer(j, TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 20); // cursor 20 x 2 x 4 = 160 windows into the data
        int[] few = new int[500];
        for (int i = 0; i < few.length; i++) few[i] = i % 97;
        dev.strata.trainer.data.TokenShard.write(small.resolve("train-00000.bin"), few, 0, few.length, 128); // 31 windows
        var e = assertThrows(IllegalArgumentException.class, () -> new Trainer(j, TrainerTest.quiet()).run(RunDirectory.Mode.RESUME, 0));
        assertTrue(e.getMessage().contains("data position") && e.getMessage().contains("manifest.json"), e.getMessage());
    }

    @Test
    void loraWithoutABaseIsRefused(@TempDir Path runs) {
        JobConfig j = job(runs.resolve("r"), 2).withOverrides("lora.rank = 2");
        var e = assertThrows(IllegalArgumentException.class, () -> new Trainer(j, TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0));
        assertTrue(e.getMessage().contains("model.init_from"), e.getMessage());
        assertFalse(Files.exists(runs.resolve("r")), "nothing written");
    }
}
