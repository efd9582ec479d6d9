package dev.strata.trainer.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DataTest {

    @Test
    void gpt2TokenizerMatchesGpt2() {
        Gpt2Tokenizer tok = new Gpt2Tokenizer();
        assertArrayEquals(new int[] {15496, 995}, tok.encode("Hello world"));
        assertEquals("Hello world", tok.decode(new int[] {15496, 995}));
    }

    @Test
    void prepareWritesShardsThatReadBackAsTheTokens(@TempDir Path dir) throws Exception {
        Path input = dir.resolve("in.txt");
        String text = "To be, or not to be, that is the question.\n".repeat(200);
        Files.writeString(input, text);
        var summary = DataPrep.prepare(input, dir.resolve("data"), 0.1, 1000);
        int[] all = new Gpt2Tokenizer().encode(text);
        assertEquals(all.length, summary.trainTokens() + summary.valTokens());
        assertTrue(summary.shards() > 2, "several train shards of 1000 tokens");
        TokenShard first = TokenShard.open(dir.resolve("data/train-00000.bin"));
        assertEquals(1000, first.count());
        int[] read = new int[1000];
        first.read(0, read, 0, 1000);
        assertArrayEquals(Arrays.copyOf(all, 1000), read);
        TokenDataset ds = new TokenDataset(dir.resolve("data"), "train", 16);
        int[] x = new int[16], y = new int[16];
        ds.window(0, x, y, 0);
        assertArrayEquals(Arrays.copyOfRange(all, 0, 16), x);
        assertArrayEquals(Arrays.copyOfRange(all, 1, 17), y);
    }

    @Test
    void jsonlDocumentsAreJoinedByEndOfText(@TempDir Path dir) throws Exception {
        Path input = dir.resolve("docs.jsonl");
        Files.writeString(input, "{\"text\": \"Hello world\"}\n\n{\"text\": \"Hello world\"}\n".repeat(20));
        DataPrep.prepare(input, dir.resolve("d"), 0.25, 1 << 20);
        TokenShard s = TokenShard.open(dir.resolve("d/train-00000.bin"));
        assertEquals(15496, s.get(0));
        assertEquals(995, s.get(1));
        assertEquals(Gpt2Tokenizer.END_OF_TEXT, s.get(2));
        Files.writeString(input, "{\"text\": 3}\n");
        var e = assertThrows(IllegalArgumentException.class, () -> DataPrep.prepare(input, dir.resolve("e"), 0.1, 100));
        assertTrue(e.getMessage().contains(input + ":1") && e.getMessage().contains("\"text\""), e.getMessage());
    }

    @Test
    void truncatedOrMissingShardsAreNamed(@TempDir Path dir) throws Exception {
        Path shard = dir.resolve("train-00000.bin");
        TokenShard.write(shard, new int[] {1, 2, 3, 4, 5, 6, 7, 8, 9}, 0, 9, 50257);
        byte[] all = Files.readAllBytes(shard);
        Files.write(shard, Arrays.copyOf(all, all.length - 3));
        var e = assertThrows(IllegalArgumentException.class, () -> TokenShard.open(shard));
        assertTrue(e.getMessage().contains(shard.toString()) && e.getMessage().contains("truncated"), e.getMessage());
        Files.writeString(shard, "not a shard at all, but long enough for a header");
        var magic = assertThrows(IllegalArgumentException.class, () -> TokenShard.open(shard));
        assertTrue(magic.getMessage().contains("magic"), magic.getMessage());
        var missing = assertThrows(IllegalArgumentException.class, () -> new TokenDataset(dir.resolve("nope"), "train", 4));
        assertTrue(missing.getMessage().contains("strata data prepare"), missing.getMessage());
        var noVal = assertThrows(IllegalArgumentException.class, () -> new TokenDataset(dir, "val", 4));
        assertTrue(noVal.getMessage().contains("no val-NNNNN.bin"), noVal.getMessage());
    }

    @Test
    void samplerIsSeededAndResumesExactly(@TempDir Path dir) throws Exception {
        int[] tokens = new int[2000];
        for (int i = 0; i < tokens.length; i++) tokens[i] = (i * 31) % 50000;
        TokenShard.write(dir.resolve("train-00000.bin"), tokens, 0, tokens.length, 50257);
        TokenDataset ds = new TokenDataset(dir, "train", 8);
        BatchSampler a = new BatchSampler(ds, 5, new BatchSampler.Position(0, 0));
        int[] x = new int[4 * 8], y = new int[4 * 8];
        for (int i = 0; i < 70; i++) a.next(4, x, y); // crosses an epoch (249 windows)
        BatchSampler.Position saved = a.position();
        assertEquals(1, saved.epoch());
        int[] expected = new int[4 * 8];
        a.next(4, expected, y);
        BatchSampler resumed = new BatchSampler(ds, 5, saved);
        resumed.next(4, x, y);
        assertArrayEquals(expected, x);
        BatchSampler otherSeed = new BatchSampler(ds, 6, new BatchSampler.Position(0, 0));
        int[] other = new int[4 * 8], first = new int[4 * 8];
        otherSeed.next(4, other, y);
        new BatchSampler(ds, 5, new BatchSampler.Position(0, 0)).next(4, first, y);
        assertNotEquals(Arrays.toString(first), Arrays.toString(other));
    }
}
