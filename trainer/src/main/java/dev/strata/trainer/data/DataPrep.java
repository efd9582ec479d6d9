package dev.strata.trainer.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * {@code strata data prepare}: tokenizes a .txt file (one document) or a .jsonl file (one {"text": ...} document per
 * line, joined by {@code <|endoftext|>}) and writes train-NNNNN.bin and val-NNNNN.bin shards plus meta.json. The last
 * {@code valFraction} of the tokens become the validation split.
 */
public final class DataPrep {
    public static final String META = "meta.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    private DataPrep() {}

    public record Summary(long trainTokens, long valTokens, int shards) {}

    public static Summary prepare(Path input, Path outDir, double valFraction, int shardTokens) throws IOException {
        if (!Files.isRegularFile(input)) throw new IllegalArgumentException("input file " + input + " does not exist");
        if (!(valFraction > 0 && valFraction < 1)) throw new IllegalArgumentException("--val-fraction must lie in (0, 1), got " + valFraction);
        Gpt2Tokenizer tok = new Gpt2Tokenizer();
        int[] tokens = tokenize(input, tok);
        int split = (int) Math.round(tokens.length * (1 - valFraction));
        if (split < 2 || tokens.length - split < 2)
            throw new IllegalArgumentException("input file " + input + " gives only " + tokens.length + " tokens: too few to split");
        Files.createDirectories(outDir);
        int shards = writeSplit(outDir, "train", tokens, 0, split, shardTokens) + writeSplit(outDir, "val", tokens, split, tokens.length, shardTokens);
        Map<String, Object> meta = new LinkedHashMap<>();
        meta.put("tokenizer", "gpt2");
        meta.put("vocab_size", Gpt2Tokenizer.VOCAB_SIZE);
        meta.put("source", input.toString());
        meta.put("train_tokens", split);
        meta.put("val_tokens", tokens.length - split);
        JSON.writerWithDefaultPrettyPrinter().writeValue(outDir.resolve(META).toFile(), meta);
        return new Summary(split, tokens.length - split, shards);
    }

    static int[] tokenize(Path input, Gpt2Tokenizer tok) throws IOException {
        String name = input.getFileName().toString();
        if (name.endsWith(".txt")) return tok.encode(Files.readString(input, StandardCharsets.UTF_8));
        if (!name.endsWith(".jsonl"))
            throw new IllegalArgumentException("input file " + input + " must end in .txt or .jsonl");
        var all = new com.knuddels.jtokkit.api.IntArrayList();
        try (BufferedReader r = Files.newBufferedReader(input, StandardCharsets.UTF_8)) {
            String line;
            int lineNo = 0;
            while ((line = r.readLine()) != null) {
                lineNo++;
                if (line.isBlank()) continue;
                JsonNode doc;
                try {
                    doc = JSON.readTree(line);
                } catch (IOException e) {
                    throw new IllegalArgumentException(input + ":" + lineNo + ": not valid JSON: " + e.getMessage());
                }
                if (doc == null || !doc.path("text").isTextual())
                    throw new IllegalArgumentException(input + ":" + lineNo + ": expected an object with a string field \"text\"");
                for (int t : tok.encode(doc.get("text").asText())) all.add(t);
                all.add(Gpt2Tokenizer.END_OF_TEXT);
            }
        }
        return all.toArray();
    }

    private static int writeSplit(Path dir, String split, int[] tokens, int from, int to, int shardTokens) throws IOException {
        int n = 0;
        for (int start = from; start < to; start += shardTokens, n++)
            TokenShard.write(dir.resolve(String.format("%s-%05d.bin", split, n)), tokens, start, Math.min(to, start + shardTokens),
                    Gpt2Tokenizer.VOCAB_SIZE);
        return n;
    }
}
