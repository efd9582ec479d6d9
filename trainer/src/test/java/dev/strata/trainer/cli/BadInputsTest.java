package dev.strata.trainer.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.checkpoints.Safetensors;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every input a user can get wrong, command by command: each ends in exit code 2 and one line on stderr, "error: "
 * and what names the file, field or option, never a stack trace; and nothing is written where it was refused.
 */
class BadInputsTest {
    @TempDir static Path dir;
    static Path job, data, run, model;
    static java.net.ServerSocket busyPort; // a port in use, for parallel.port

    @org.junit.jupiter.api.AfterAll
    static void freePort() throws Exception { busyPort.close(); }

    @BeforeAll
    static void fixtures() throws Exception {
        busyPort = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress());
        Path text = dir.resolve("in.txt");
        Files.writeString(text, "The quick brown fox jumps over the lazy dog. ".repeat(200));
        data = dir.resolve("data");
        dev.strata.trainer.data.DataPrep.prepare(text, data, 0.2, 1 << 20);
        run = dir.resolve("run");
        job = dir.resolve("job.conf");
        Files.writeString(job, """
                run_dir = "%s"
                data.dir = "%s"
                model { dim = 32, n_layers = 1, n_heads = 2, max_seq_len = 16 }
                training { steps = 2, batch_size = 2, seq_len = 16, warmup_steps = 0 }
                """.formatted(run, data));
        assertEquals(0, Main.commandLine().execute("train", job.toString()));
        model = Path.of(BadInputsTest.class.getResource("/reference/tiny-gpt2").toURI());
        Files.writeString(dir.resolve("broken.conf"), "training { steps = ");
        Files.writeString(dir.resolve("typo.conf"), "trainig.steps = 3");
        Files.writeString(dir.resolve("include.conf"), "include \"missing.conf\"\nrun_dir = \"x\"");
        Files.writeString(dir.resolve("file"), "not a directory");
        Files.write(dir.resolve("latin1.txt"), "caf\u00e9".repeat(50).getBytes(StandardCharsets.ISO_8859_1));
        Files.writeString(dir.resolve("data.csv"), "a,b");
        tokens("outside.safetensors", 3, 5, 71);
        tokens("padding.safetensors", 3, 5, 100);
        byte[] header = "{\"input_ids\":{\"dtype\":\"I64\",\"shape\":[\"a\",2],\"data_offsets\":[0,16]}}".getBytes(StandardCharsets.UTF_8);
        try (OutputStream o = Files.newOutputStream(dir.resolve("strings.safetensors"))) {
            o.write(java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(header.length).array());
            o.write(header);
            o.write(new byte[16]);
        }
    }

    static void tokens(String name, long... ids) throws Exception {
        double[] d = new double[ids.length];
        for (int i = 0; i < d.length; i++) d[i] = ids[i];
        try (OutputStream o = Files.newOutputStream(dir.resolve(name))) {
            Safetensors.write(o, Map.of("input_ids", HostTensor.ofDoubles(d, DType.I64, 1, ids.length)), Map.of());
        }
    }

    /** {args..., what the line must contain}. */
    static List<String[]> cases() {
        String j = job.toString(), r = run.toString(), d = data.toString(), m = model.toString(), t = dir.toString();
        return List.of(
                new String[] {"train", t + "/nope.conf", "does not exist"},
                new String[] {"train", t + "/broken.conf", "broken.conf"},
                new String[] {"train", t + "/typo.conf", "trainig"},
                new String[] {"train", t + "/include.conf", "missing.conf"},
                new String[] {"train", j, "--set", "training.steps", "--set 'training.steps'"},
                new String[] {"train", j, "--set", "training={", "cannot be parsed"},
                new String[] {"train", j, "--set", "training.steps=2.7", "training.steps"},
                new String[] {"train", j, "--set", "training.lr=Infinity", "training.lr"},
                new String[] {"train", j, "--set", "model.norm_eps=Infinity", "model.norm_eps"},
                new String[] {"train", j, "--set", "model.rope_theta=NaN", "model.rope_theta"},
                new String[] {"train", j, "--set", "model.preset=gpt2-huge", "gpt2-huge"},
                new String[] {"train", j, "--exit-after", "-1", "--exit-after"},
                new String[] {"train", j, "--exit-after", "two", "--exit-after"},
                new String[] {"train", j, "--set", "run_dir=\"" + t + "/file\"", "is a file"},
                new String[] {"train", j, "--set", "run_dir=\"\"", "run_dir"},
                new String[] {"train", j, "--set", "data.dir=\"" + t + "/nodata\"", "nodata"},
                new String[] {"train", j, "--resume", "--overwrite", "--resume"},
                new String[] {"train", j, "--allow-changes", "--allow-changes"},
                new String[] {"train", j, "already holds a run"},
                new String[] {"train", j, "--resume", "finished"},
                new String[] {"train", j, "--resume", "--set", "training.steps=4", "--set", "training.batch_size=1", "training.batch_size"},
                new String[] {"train", j, "--overwrite", "--set", "run_dir=\"" + d + "\"", "data.dir"},
                new String[] {"train", j, "--overwrite", "--set", "run_dir=\"/\"", "root"},
                new String[] {"train", j, "--bogus", "--bogus"},
                new String[] {"train", j, "--set", "parallel.dp=0", "parallel.dp"},
                new String[] {"train", j, "--set", "parallel.dp=2", "--set", "backend=cuda", "parallel.dp = 2 on the GPU"},
                new String[] {"train", j, "--set", "parallel.zero=3", "parallel.zero"},
                new String[] {"train", j, "--set", "parallel.tp=0", "parallel.tp"},
                new String[] {"train", j, "--set", "parallel.pp=2", "--set", "parallel.launcher=threads", "stages need as many layers"},
                new String[] {"train", j, "--set", "parallel.pp=2", "--set", "parallel.pp_layers=[1]", "parallel.pp_layers must list 2"},
                new String[] {"train", j, "--set", "parallel.schedule=zigzag", "parallel.schedule"},
                new String[] {"train", j, "--set", "parallel.pp=2", "--set", "parallel.schedule=interleaved", "parallel.virtual_stages = 2 or more"},
                new String[] {"train", j, "--set", "parallel.pp=2", "--set", "parallel.virtual_stages=2", "only parallel.schedule = interleaved runs"},
                new String[] {"train", j, "--set", "parallel.schedule=interleaved", "--set", "parallel.virtual_stages=2", "but parallel.pp = 1"},
                new String[] {"train", j, "--set", "parallel.pp=2", "--set", "parallel.schedule=interleaved", "--set", "parallel.virtual_stages=2",
                        "--set", "parallel.launcher=threads", "x virtual_stages = 2 = 4 chunks need as many layers"},
                new String[] {"train", j, "--set", "parallel.pp=2", "--set", "parallel.schedule=interleaved", "--set", "parallel.virtual_stages=2",
                        "--set", "model.n_layers=4", "--set", "training.grad_accum_steps=3", "--set", "parallel.launcher=threads",
                        "training.grad_accum_steps must be a multiple of it, got 3"},
                new String[] {"train", j, "--set", "parallel.sequence_parallel=true", "parallel.sequence_parallel = true"},
                new String[] {"train", j, "--set", "parallel.tp=2", "--set", "parallel.sequence_parallel=true", "--set", "training.batch_size=1",
                        "--set", "training.seq_len=15", "--set", "parallel.launcher=threads", "rows (training.batch_size × seq_len)"},
                new String[] {"train", j, "--set", "parallel.tp=3", "--set", "parallel.launcher=threads", "parallel.tp = 3 does not divide model.n_heads"},
                new String[] {"train", j, "--set", "parallel.tp=2", "--set", "backend=cuda", "parallel.tp = 2 on the GPU needs 2 GPUs"},
                new String[] {"train", j, "--set", "parallel.tp=2", "--set", "parallel.sequence_parallel=true", "--set", "lora.rank=4", "--set",
                        "parallel.launcher=threads", "LoRA and parallel.sequence_parallel is not supported yet"},
                new String[] {"train", j, "--set", "parallel.launcher=mpi", "parallel.launcher"},
                new String[] {"train", j, "--set", "parallel.timeout=soon", "parallel.timeout"},
                new String[] {"train", j, "--set", "parallel.timeout=5", "parallel.timeout"},
                new String[] {"train", j, "--set", "parallel.dp=2", "--set", "backend=cuda", "--set", "parallel.launcher=threads", "set parallel.launcher = processes"},
                new String[] {"train", j, "--set", "parallel.dp=2", "--set", "backend=cuda", "--set", "parallel.gpus=[0,5]", "parallel.gpus lists GPU"},
                new String[] {"train", j, "--set", "parallel.gpus=[0,0]", "parallel.gpus must be"},
                new String[] {"train", j, "--set", "parallel.gpus=some", "parallel.gpus must be"},
                new String[] {"train", j, "--set", "parallel.bucket_mb=0", "parallel.bucket_mb"},
                new String[] {"train", j, "--set", "parallel.port=70000", "parallel.port"},
                new String[] {"train", j, "--set", "parallel.dp=2", "--set", "parallel.port=" + busyPort.getLocalPort(), "is in use"},
                new String[] {"data", "prepare", "--input", t + "/none.txt", "--out", t + "/o1", "none.txt"},
                new String[] {"data", "prepare", "--input", t + "/in.txt", "--out", t + "/o2", "--shard-tokens", "0", "--shard-tokens"},
                new String[] {"data", "prepare", "--input", t + "/in.txt", "--out", t + "/o3", "--val-fraction", "2", "--val-fraction"},
                new String[] {"data", "prepare", "--input", t + "/in.txt", "--out", t + "/file", "is a file"},
                new String[] {"data", "prepare", "--input", t + "/in.txt", "--out", d, "--overwrite"},
                new String[] {"data", "prepare", "--input", t + "/latin1.txt", "--out", t + "/o4", "UTF-8"},
                new String[] {"data", "prepare", "--input", t + "/data.csv", "--out", t + "/o5", ".jsonl"},
                new String[] {"data", "prepare", "--out", t + "/o6", "--input"},
                new String[] {"ckpt", "verify", t + "/none", "does not exist"},
                new String[] {"ckpt", "inspect", d, "neither a checkpoint"},
                new String[] {"ckpt", "export-hf", r, "--out", d, "already exists"},
                new String[] {"ckpt", "export-hf", r, "--out", t + "/hf-i8", "--dtype", "i8", "dtype"},
                new String[] {"model", "grad", "--model", m, "--tokens", t + "/outside.safetensors", "--out", t + "/g1", "vocabulary"},
                new String[] {"model", "grad", "--model", m, "--tokens", t + "/padding.safetensors", "--out", t + "/g2", "vocabulary"},
                new String[] {"model", "grad", "--model", m, "--tokens", t + "/strings.safetensors", "--out", t + "/g3", "strings.safetensors"},
                new String[] {"model", "grad", "--model", m, "--tokens", t + "/outside.safetensors", "--out", d, "is a directory"},
                new String[] {"model", "grad", "--model", t + "/none", "--tokens", t + "/outside.safetensors", "--out", t + "/g4", "does not exist"},
                new String[] {"generate", "--checkpoint", r, "--tokens", "0", "--tokens"},
                new String[] {"generate", "--checkpoint", r, "--top-p", "0", "top-p"},
                new String[] {"generate", "--checkpoint", r, "--temperature", "-1", "temperature"},
                new String[] {"generate", "--checkpoint", r, "--model", m, "mutually exclusive"},
                new String[] {"generate", "--checkpoint", t + "/none", "does not exist"},
                new String[] {"generate", "--model", m, "vocabulary of 71"},
                new String[] {"eval", "--checkpoint", r, "--data", t + "/none", "none"},
                new String[] {"eval", "--checkpoint", r, "--data", d, "--split", "test", "--split"},
                new String[] {"eval", "--checkpoint", r, "--data", d, "--batches", "-1", "--batches"},
                new String[] {"eval", "--checkpoint", r, "--data", d, "--seq-len", "99", "--seq-len"});
    }

    @Test
    void everyBadInputGetsOneLineAndExitCode2() throws Exception {
        List<String> failures = new ArrayList<>();
        PrintStream stdout = System.out;
        for (String[] c : cases()) {
            String[] args = java.util.Arrays.copyOf(c, c.length - 1);
            String expected = c[c.length - 1], command = String.join(" ", args);
            var err = new StringWriter();
            var cl = Main.commandLine();
            cl.setErr(new PrintWriter(err, true));
            int rc;
            System.setOut(new PrintStream(new ByteArrayOutputStream()));
            try {
                rc = cl.execute(args);
            } finally {
                System.setOut(stdout);
            }
            List<String> lines = err.toString().lines().toList();
            if (rc != 2 || lines.size() != 1 || !lines.get(0).startsWith("error: ") || !lines.get(0).contains(expected)
                    || lines.get(0).contains("Exception"))
                failures.add(command + "\n    rc " + rc + ", wanted a line containing '" + expected + "', got: " + err);
        }
        assertTrue(failures.isEmpty(), failures.size() + " of " + cases().size() + " bad inputs:\n" + String.join("\n", failures));
        for (String o : List.of("o1", "o2", "o3", "o4", "o5", "hf-i8", "g1", "g2", "g3", "g4"))
            assertFalse(Files.exists(dir.resolve(o)), o + " was written although its command was refused");
        try (Stream<Path> s = Files.list(data)) {
            assertEquals(3, s.count(), "the data set is as prepared: two shards and meta.json");
        }
    }
}
