package dev.strata.trainer.data;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * {@code strata data prepare}: tokenizes a .txt file (one document) or a .jsonl file (one {"text": ...} document per
 * line, joined by {@code <|endoftext|>}) and writes train-NNNNN.bin and val-NNNNN.bin shards plus meta.json. The last
 * {@code valFraction} of the tokens become the validation split. The input is streamed: tokens go to a temporary
 * file as they come, and the shards are cut from it once the total is known. Everything is written beside the output
 * first; only a complete data set replaces an earlier one, and only when asked to.
 */
public final class DataPrep {
    public static final String META = "meta.json";
    /** Beyond this many shards a --shard-tokens is a typo, not a plan. */
    static final int MAX_SHARDS = 10_000;
    private static final ObjectMapper JSON = new ObjectMapper();

    private DataPrep() {}

    public record Summary(long trainTokens, long valTokens, int shards) {}

    /** Where tokenizing stands: input bytes read of the total, tokens so far. */
    public record Progress(long bytesRead, long bytesTotal, long tokens) {}

    public static Summary prepare(Path input, Path outDir, double valFraction, int shardTokens) throws IOException {
        return prepare(input, outDir, valFraction, shardTokens, false, p -> {});
    }

    /** {@code overwrite} replaces a data set already in outDir (its shards and meta.json; nothing else there). */
    public static Summary prepare(Path input, Path outDir, double valFraction, int shardTokens, boolean overwrite,
                                  Consumer<Progress> progress) throws IOException {
        if (Files.isDirectory(input)) throw new IllegalArgumentException("--input " + input + " is a directory; give a .txt or .jsonl file");
        if (!Files.isRegularFile(input)) throw new IllegalArgumentException("input file " + input + " does not exist");
        if (!(valFraction > 0 && valFraction < 1)) throw new IllegalArgumentException("--val-fraction must lie in (0, 1), got " + valFraction);
        if (shardTokens < 2) throw new IllegalArgumentException("--shard-tokens must be at least 2, got " + shardTokens);
        if (Files.exists(outDir) && !Files.isDirectory(outDir))
            throw new IllegalArgumentException("--out " + outDir + " is a file, not a directory");
        List<Path> previous = preparedFiles(outDir);
        if (!previous.isEmpty() && !overwrite)
            throw new IllegalArgumentException("--out " + outDir + " already holds prepared data (" + previous.get(0).getFileName()
                    + (previous.size() > 1 ? " and " + (previous.size() - 1) + " more" : "") + "); pass --overwrite to replace it");
        String name = input.getFileName().toString();
        if (!name.endsWith(".txt") && !name.endsWith(".jsonl")) throw new IllegalArgumentException("input file " + input + " must end in .txt or .jsonl");
        boolean created = !Files.exists(outDir);
        Files.createDirectories(outDir);
        Path tokens = Files.createTempFile(outDir, ".tokens-", ".tmp");
        Path staging = null;
        boolean done = false;
        try {
            long total = tokenize(input, tokens, progress);
            long split = Math.round(total * (1 - valFraction));
            if (split < 2 || total - split < 2)
                throw new IllegalArgumentException("input file " + input + " gives only " + total + " tokens: too few to split");
            long shards = ceilDiv(split, shardTokens) + ceilDiv(total - split, shardTokens);
            if (shards > MAX_SHARDS)
                throw new IllegalArgumentException("--shard-tokens " + shardTokens + " would cut " + total + " tokens into " + shards
                        + " shards (at most " + MAX_SHARDS + "); raise it");
            staging = Files.createTempDirectory(outDir, ".prepare-");
            int written = writeSplit(tokens, staging, "train", 0, split, shardTokens) + writeSplit(tokens, staging, "val", split, total, shardTokens);
            Map<String, Object> meta = new LinkedHashMap<>();
            meta.put("tokenizer", "gpt2");
            meta.put("vocab_size", Gpt2Tokenizer.VOCAB_SIZE);
            meta.put("source", input.toString());
            meta.put("train_tokens", split);
            meta.put("val_tokens", total - split);
            JSON.writerWithDefaultPrettyPrinter().writeValue(staging.resolve(META).toFile(), meta);
            commit(staging, outDir, previous);
            done = true;
            return new Summary(split, total - split, written);
        } finally {
            Files.deleteIfExists(tokens);
            if (staging != null) try (Stream<Path> s = Files.list(staging)) {
                for (Path p : s.toList()) Files.deleteIfExists(p);
            } finally {
                Files.deleteIfExists(staging);
            }
            if (!done && created) Files.deleteIfExists(outDir); // a refused prepare leaves no trace; the directory is empty here
        }
    }

    /** The files of a data set already in dir: its shards and meta.json. */
    static List<Path> preparedFiles(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) return List.of();
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().matches("(train|val)-\\d{5}\\.bin|" + META)).sorted().toList();
        }
    }

    /** Moves the new data set in: the old meta.json goes first and the new one comes last, so a half-done swap shows. */
    private static void commit(Path staging, Path outDir, List<Path> previous) throws IOException {
        Files.deleteIfExists(outDir.resolve(META));
        for (Path p : previous) Files.deleteIfExists(p);
        List<Path> fresh;
        try (Stream<Path> s = Files.list(staging)) {
            fresh = s.filter(p -> !p.getFileName().toString().equals(META)).sorted().toList();
        }
        for (Path p : fresh) Files.move(p, outDir.resolve(p.getFileName()), StandardCopyOption.ATOMIC_MOVE);
        Files.move(staging.resolve(META), outDir.resolve(META), StandardCopyOption.ATOMIC_MOVE);
    }

    /** Streams the input's tokens, as uint16, into {@code out}; returns how many there are. */
    static long tokenize(Path input, Path out, Consumer<Progress> progress) throws IOException {
        Gpt2Tokenizer tok = new Gpt2Tokenizer();
        long size = Files.size(input);
        TextStream text = new TextStream(input, TextStream.CHUNK_CHARS);
        long[] count = {0};
        long[] lastReport = {System.nanoTime()};
        try (OutputStream o = new BufferedOutputStream(Files.newOutputStream(out), 1 << 20)) {
            Consumer<int[]> write = ids -> {
                byte[] b = new byte[ids.length * 2];
                for (int i = 0; i < ids.length; i++) {
                    b[2 * i] = (byte) ids[i];
                    b[2 * i + 1] = (byte) (ids[i] >>> 8);
                }
                try {
                    o.write(b);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
                count[0] += ids.length;
                if (System.nanoTime() - lastReport[0] > 1_000_000_000L) {
                    lastReport[0] = System.nanoTime();
                    progress.accept(new Progress(text.bytesRead(), size, count[0]));
                }
            };
            text.read(chunk -> write.accept(tok.encode(chunk)), doc -> {
                write.accept(tok.encode(doc));
                write.accept(new int[] {Gpt2Tokenizer.END_OF_TEXT});
            });
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
        progress.accept(new Progress(size, size, count[0]));
        return count[0];
    }

    private static int writeSplit(Path tokens, Path dir, String split, long from, long to, int shardTokens) throws IOException {
        int n = 0;
        try (FileChannel in = FileChannel.open(tokens, StandardOpenOption.READ)) {
            for (long start = from; start < to; start += shardTokens, n++) {
                long count = Math.min(to, start + shardTokens) - start;
                Path shard = dir.resolve(String.format("%s-%05d.bin", split, n));
                try (FileChannel outCh = FileChannel.open(shard, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                    outCh.write(TokenShard.header(2, count));
                    for (long at = 2 * start, end = 2 * (start + count); at < end; )
                        at += in.transferTo(at, end - at, outCh);
                }
            }
        }
        return n;
    }

    private static long ceilDiv(long a, long b) { return (a + b - 1) / b; }
}
