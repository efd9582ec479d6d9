package dev.strata.trainer.finetune;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A Hugging Face model directory's own tokenizer: {@code tokenizer.json} through the Hugging Face tokenizers library
 * (byte-level BPE, SentencePiece-style, whatever the file describes), its special tokens from
 * {@code tokenizer_config.json}, and its chat template where transformers keeps one ({@code chat_template.jinja}
 * beside the tokenizer, as transformers 5 saves it, or the config's {@code chat_template} field).
 */
public final class ModelTokenizer implements AutoCloseable {
    private final HuggingFaceTokenizer tokenizer;
    private final String bosToken, eosToken; // null where the model has none
    private final String chatTemplate;       // null where the model ships none
    private final int eosId;                 // -1 without an eos token

    private ModelTokenizer(HuggingFaceTokenizer tokenizer, String bosToken, String eosToken, String chatTemplate) {
        this.tokenizer = tokenizer;
        this.bosToken = bosToken;
        this.eosToken = eosToken;
        this.chatTemplate = chatTemplate;
        this.eosId = eosToken == null ? -1 : single(eosToken);
    }

    /** The tokenizer of model directory dir; chatTemplateFile (or null) replaces the model's own template. */
    public static ModelTokenizer load(Path dir, Path chatTemplateFile) {
        Path json = dir.resolve("tokenizer.json"), config = dir.resolve("tokenizer_config.json");
        if (!Files.isRegularFile(json))
            throw new IllegalArgumentException(dir + " has no tokenizer.json: fine-tuning reads the model's own tokenizer (save it with the model)");
        try {
            JsonNode cfg = Files.isRegularFile(config) ? new ObjectMapper().readTree(config.toFile()) : new ObjectMapper().createObjectNode();
            String template = null;
            if (chatTemplateFile != null) {
                if (!Files.isRegularFile(chatTemplateFile)) throw new IllegalArgumentException("--chat-template " + chatTemplateFile + " is not a file");
                template = Files.readString(chatTemplateFile);
            } else if (Files.isRegularFile(dir.resolve("chat_template.jinja"))) {
                template = Files.readString(dir.resolve("chat_template.jinja"));
            } else if (cfg.path("chat_template").isTextual()) {
                template = cfg.get("chat_template").asText();
            }
            HuggingFaceTokenizer t = HuggingFaceTokenizer.builder().optTokenizerPath(json).optAddSpecialTokens(false).optTruncation(false)
                    .optPadding(false).build();
            return new ModelTokenizer(t, token(cfg, "bos_token"), token(cfg, "eos_token"), template);
        } catch (IOException e) {
            throw new IllegalArgumentException(json + " cannot be read as a tokenizer: " + e.getMessage());
        }
    }

    /** A special token as tokenizer_config.json gives it: a string, or an object with "content"; null when absent. */
    private static String token(JsonNode cfg, String field) {
        JsonNode n = cfg.path(field);
        if (n.isTextual()) return n.asText();
        if (n.path("content").isTextual()) return n.get("content").asText();
        return null;
    }

    /** The ids of text, special tokens written in it recognised, none added. */
    public int[] encode(String text) {
        long[] ids = tokenizer.encode(text, false, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = Math.toIntExact(ids[i]);
        return out;
    }

    /** Ids with the characters each came from: token i covers text[start[i], end[i]) (-1, -1 where the library gives no span). */
    public record Spans(int[] ids, int[] start, int[] end) {}

    public Spans encodeWithSpans(String text) {
        var enc = tokenizer.encode(text, false, false);
        long[] ids = enc.getIds();
        var spans = enc.getCharTokenSpans();
        int[] out = new int[ids.length], start = new int[ids.length], end = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
            start[i] = spans[i] == null ? -1 : spans[i].getStart();
            end[i] = spans[i] == null ? -1 : spans[i].getEnd();
        }
        return new Spans(out, start, end);
    }

    public String decode(int[] ids) {
        long[] l = new long[ids.length];
        for (int i = 0; i < ids.length; i++) l[i] = ids[i];
        return tokenizer.decode(l, false);
    }

    /** The id of the end-of-sequence token, or -1 when the model names none. */
    public int eosId() { return eosId; }

    public String bosToken() { return bosToken; }

    public String eosToken() { return eosToken; }

    /** The model's chat template (Jinja), or null. */
    public String chatTemplate() { return chatTemplate; }

    private int single(String token) {
        int[] ids = encode(token);
        if (ids.length != 1) throw new IllegalArgumentException("the special token " + token + " is not one token of tokenizer.json");
        return ids[0];
    }

    @Override public void close() { tokenizer.close(); }
}
