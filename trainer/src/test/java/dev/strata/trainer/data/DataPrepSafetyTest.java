package dev.strata.trainer.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** data prepare refuses what would flood the disk or mix data sets, reads bad bytes as an error, and streams its input. */
class DataPrepSafetyTest {
    private static final Path SHAKESPEARE = Path.of("../examples/data/tinyshakespeare.txt");

    @Test
    void shardTokensOfZeroIsRefusedBeforeAnythingIsWritten(@TempDir Path dir) throws Exception {
        Path input = dir.resolve("in.txt");
        Files.writeString(input, "Hello world, and hello again.\n".repeat(50));
        var e = assertThrows(IllegalArgumentException.class, () -> DataPrep.prepare(input, dir.resolve("out"), 0.1, 0));
        assertTrue(e.getMessage().contains("--shard-tokens"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("out")), "nothing written");
        var many = assertThrows(IllegalArgumentException.class, () -> DataPrep.prepare(SHAKESPEARE, dir.resolve("out"), 0.1, 2));
        assertTrue(many.getMessage().contains("shards"), many.getMessage());
        assertFalse(Files.exists(dir.resolve("out")), "a refused prepare leaves no directory, shard or temporary file behind");
    }

    @Test
    void rePreparingNeedsOverwriteAndThenLeavesNoStaleShards(@TempDir Path dir) throws Exception {
        Path big = dir.resolve("big.txt"), small = dir.resolve("small.txt"), out = dir.resolve("data");
        Files.writeString(big, "To be, or not to be, that is the question.\n".repeat(400));
        Files.writeString(small, "Brevity is the soul of wit.\n".repeat(40));
        assertTrue(DataPrep.prepare(big, out, 0.1, 1000).shards() > 3);
        Files.writeString(out.resolve("notes.txt"), "mine");
        var e = assertThrows(IllegalArgumentException.class, () -> DataPrep.prepare(small, out, 0.1, 1000));
        assertTrue(e.getMessage().contains("--overwrite"), e.getMessage());
        var s = DataPrep.prepare(small, out, 0.1, 1000, true, p -> {});
        assertEquals(2, s.shards());
        try (Stream<Path> files = Files.list(out)) {
            assertEquals(java.util.List.of("meta.json", "notes.txt", "train-00000.bin", "val-00000.bin"),
                    files.map(p -> p.getFileName().toString()).sorted().toList(), "old shards gone, the user's file kept");
        }
        Files.writeString(dir.resolve("file"), "x");
        var f = assertThrows(IllegalArgumentException.class, () -> DataPrep.prepare(small, dir.resolve("file"), 0.1, 1000));
        assertTrue(f.getMessage().contains("is a file"), f.getMessage());
    }

    @Test
    void invalidUtf8AndBinaryInputAreNamed(@TempDir Path dir) throws Exception {
        Path latin1 = dir.resolve("latin1.txt"), binary = dir.resolve("blob.txt");
        Files.write(latin1, "caf\u00e9 au lait".getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
        var e = assertThrows(IllegalArgumentException.class, () -> DataPrep.prepare(latin1, dir.resolve("a"), 0.1, 1000));
        assertTrue(e.getMessage().contains(latin1.toString()) && e.getMessage().contains("UTF-8"), e.getMessage());
        Files.write(binary, new byte[] {'a', 'b', 0, 0, 1, 2, 'c'});
        var b = assertThrows(IllegalArgumentException.class, () -> DataPrep.prepare(binary, dir.resolve("b"), 0.1, 1000));
        assertTrue(b.getMessage().contains("binary"), b.getMessage());
    }

    /** Chunked reading cuts only where the tokenizer cuts: the tokens are those of the whole text. */
    @Test
    void streamedTokensEqualTheWholeFilesTokens(@TempDir Path dir) throws Exception {
        Gpt2Tokenizer tok = new Gpt2Tokenizer();
        String text = Files.readString(SHAKESPEARE).substring(0, 200_000) + "\r\nCRLF lines,\r\n  indented\r\n\u4f60\u597d\u3002\u4e16\u754c it's";
        Path input = dir.resolve("in.txt");
        Files.writeString(input, text);
        var chunks = new java.util.ArrayList<String>();
        new TextStream(input, 4096).read(chunks::add, d -> {});
        assertTrue(chunks.size() > 40, "read in many chunks: " + chunks.size());
        var streamed = new com.knuddels.jtokkit.api.IntArrayList();
        for (String c : chunks) for (int t : tok.encode(c)) streamed.add(t);
        assertArrayEquals(tok.encode(text), streamed.toArray());
    }
}
