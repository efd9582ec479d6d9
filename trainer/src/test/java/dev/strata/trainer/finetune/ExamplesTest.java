package dev.strata.trainer.finetune;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fine-tuning data through a model's own tokenizer (a small byte-level BPE tokenizer.json, loaded by the Hugging
 * Face tokenizers library) and chat template (ChatML, rendered by Jinjava): each kind detected, the trained tokens
 * the completion's or the assistant's, bad lines reported by number.
 */
class ExamplesTest {
    @TempDir static Path model;
    static ModelTokenizer tok;

    @BeforeAll
    static void copyModel() throws Exception {
        for (String f : List.of("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"))
            try (var in = ExamplesTest.class.getResourceAsStream(f)) {
                Files.copy(in, model.resolve(f));
            }
        tok = ModelTokenizer.load(model, null);
    }

    @AfterAll
    static void close() { tok.close(); }

    private static Path write(Path dir, String... lines) throws Exception {
        Path f = dir.resolve("data.jsonl");
        Files.write(f, List.of(lines));
        return f;
    }

    @Test
    void theTokenizerIsTheModelsOwn() {
        int[] ids = tok.encode("hello world");
        assertEquals(2, ids.length, "the merges make 'hello' and ' world' one token each: " + java.util.Arrays.toString(ids));
        assertEquals("hello world", tok.decode(ids));
        assertEquals(1, tok.encode("<|im_end|>").length, "a special token written in text is one token");
        assertEquals(tok.encode("<|im_end|>")[0], tok.eosId());
    }

    /**
     * A SentencePiece-style tokenizer.json as Llama 2 and Mistral ship it: BPE over "▁"-joined words with byte fallback,
     * spaces replaced and one prepended by the normalizer, <s> and </s> as special tokens.
     */
    static Path sentencePieceModel(Path dir) throws Exception {
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        java.util.Map<String, Integer> vocab = new java.util.LinkedHashMap<>();
        java.util.List<java.util.Map<String, Object>> added = new java.util.ArrayList<>();
        for (String special : List.of("<unk>", "<s>", "</s>")) {
            added.add(java.util.Map.of("id", vocab.size(), "content", special, "single_word", false, "lstrip", false, "rstrip", false,
                    "normalized", false, "special", true));
            vocab.put(special, vocab.size());
        }
        for (int b = 0; b < 256; b++) vocab.put(String.format("<0x%02X>", b), vocab.size());
        for (char c : "▁abcdefghijklmnopqrstuvwxyz".toCharArray()) vocab.put(String.valueOf(c), vocab.size());
        List<String> merges = List.of("h e", "l l", "▁ w", "o r", "▁ he", "▁he ll", "▁hell o", "▁w or", "▁wor l", "▁worl d");
        for (String m : merges) vocab.put(m.replace(" ", ""), vocab.size());
        var tokenizer = new java.util.LinkedHashMap<String, Object>();
        tokenizer.put("version", "1.0");
        tokenizer.put("added_tokens", added);
        tokenizer.put("normalizer", java.util.Map.of("type", "Sequence", "normalizers", List.of(java.util.Map.of("type", "Prepend", "prepend", "▁"),
                java.util.Map.of("type", "Replace", "pattern", java.util.Map.of("String", " "), "content", "▁"))));
        tokenizer.put("pre_tokenizer", null);
        tokenizer.put("post_processor", null);
        tokenizer.put("decoder", java.util.Map.of("type", "Sequence", "decoders", List.of(
                java.util.Map.of("type", "Replace", "pattern", java.util.Map.of("String", "▁"), "content", " "), java.util.Map.of("type", "ByteFallback"),
                java.util.Map.of("type", "Fuse"), java.util.Map.of("type", "Strip", "content", " ", "start", 1, "stop", 0))));
        var model = new java.util.LinkedHashMap<String, Object>();
        model.put("type", "BPE");
        model.put("unk_token", "<unk>");
        model.put("fuse_unk", true);
        model.put("byte_fallback", true);
        model.put("vocab", vocab);
        model.put("merges", merges);
        tokenizer.put("model", model);
        json.writeValue(dir.resolve("tokenizer.json").toFile(), tokenizer);
        // Mistral's way: the chat template as a field of tokenizer_config.json, no chat_template.jinja beside it
        json.writeValue(dir.resolve("tokenizer_config.json").toFile(), java.util.Map.of("bos_token", "<s>", "eos_token", java.util.Map.of("content", "</s>"),
                "chat_template", "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
                        + "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"));
        return dir;
    }

    @Test
    void aSentencePieceStyleTokenizerWorksAsItsModelShipsIt(@TempDir Path dir) throws Exception {
        try (ModelTokenizer sp = ModelTokenizer.load(sentencePieceModel(dir), null)) {
            int[] ids = sp.encode("hello world");
            assertEquals(2, ids.length, "'▁hello' and '▁world' are one token each: " + java.util.Arrays.toString(ids));
            assertEquals("hello world", sp.decode(ids));
            assertEquals(2, sp.eosId(), "</s> from tokenizer_config.json's object form");
            int[] accented = sp.encode("héllo");
            assertTrue(accented.length > 3, "é is not in the vocabulary: its two UTF-8 bytes fall back to byte tokens");
            assertEquals("héllo", sp.decode(accented));
            var data = Examples.read(write(dir, "{\"prompt\": \"hello\", \"completion\": \"world\"}"), Examples.OnBadLine.FAIL);
            var x = TokenizedExample.of(data.examples().get(0), data.kind(), sp, null, false);
            assertArrayEquals(new int[] {sp.encode("hello")[0], sp.encode("world")[0], 2}, x.ids());
            assertArrayEquals(new boolean[] {false, true, true}, x.trained());

            ChatTemplate template = new ChatTemplate(sp.chatTemplate(), sp.bosToken(), sp.eosToken());
            var chat = Examples.read(write(dir, "{\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}, {\"role\": \"assistant\", \"content\": \"world\"}]}"),
                    Examples.OnBadLine.FAIL);
            assertEquals("<s>[INST] hello [/INST]world</s>", template.render(chat.examples().get(0).messages(), false), "the template from tokenizer_config.json");
            var turn = TokenizedExample.of(chat.examples().get(0), chat.kind(), sp, template, false);
            StringBuilder trained = new StringBuilder();
            for (int i = 0; i < turn.ids().length; i++) if (turn.trained()[i]) trained.append(sp.decode(new int[] {turn.ids()[i]}));
            assertEquals("world</s>", trained.toString().replace(" ", ""), "the assistant's turn and its </s>");
        }
        Path own = Files.writeString(dir.resolve("mine.jinja"), "{% for m in messages %}{{ m['content'] }}{% endfor %}");
        try (ModelTokenizer sp = ModelTokenizer.load(dir, own)) {
            assertEquals(Files.readString(own), sp.chatTemplate(), "--chat-template replaces the model's own");
        }
    }

    @Test
    void aCompletionTrainsOnItsOwnTokensAndTheEnd(@TempDir Path dir) throws Exception {
        var data = Examples.read(write(dir, "{\"prompt\": \"hello\", \"completion\": \" world\"}"), Examples.OnBadLine.FAIL);
        assertEquals(Examples.Kind.PROMPT_COMPLETION, data.kind());
        var x = TokenizedExample.of(data.examples().get(0), data.kind(), tok, null, false);
        assertArrayEquals(new int[] {tok.encode("hello")[0], tok.encode(" world")[0], tok.eosId()}, x.ids());
        assertArrayEquals(new boolean[] {false, true, true}, x.trained());
        assertEquals(3, TokenizedExample.of(data.examples().get(0), data.kind(), tok, null, true).trainedCount(), "--train-on-inputs");
    }

    @Test
    void aChatTrainsOnTheAssistantsTurnsOnly(@TempDir Path dir) throws Exception {
        var data = Examples.read(write(dir, "{\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}, {\"role\": \"assistant\", \"content\": \"world\"},"
                + " {\"role\": \"user\", \"content\": \"the\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}"), Examples.OnBadLine.FAIL);
        assertEquals(Examples.Kind.CHAT, data.kind());
        ChatTemplate template = new ChatTemplate(tok.chatTemplate(), tok.bosToken(), tok.eosToken());
        var messages = data.examples().get(0).messages();
        assertEquals("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n", template.render(messages.subList(0, 1), true));
        var x = TokenizedExample.of(data.examples().get(0), data.kind(), tok, template, false);
        StringBuilder trained = new StringBuilder();
        for (int i = 0; i < x.ids().length; i++) if (x.trained()[i]) trained.append(tok.decode(new int[] {x.ids()[i]}));
        assertEquals("world<|im_end|>\nhello<|im_end|>\n", trained.toString(), "the assistant's text and what closes its turn");
        assertEquals(template.render(messages, false), tok.decode(x.ids()));
    }

    @Test
    void badLinesAreReportedByNumber(@TempDir Path dir) throws Exception {
        Path f = write(dir, "{\"text\": \"hello\"}", "{not json", "", "{\"prompt\": \"a\", \"completion\": \"b\"}", "{\"text\": \"\"}", "{\"text\": \"world\"}");
        var skip = Examples.read(f, Examples.OnBadLine.SKIP);
        assertEquals(Examples.Kind.TEXT, skip.kind());
        assertEquals(2, skip.examples().size());
        assertEquals(3, skip.skipped().size(), skip.skipped().toString());
        assertTrue(skip.skipped().get(0).startsWith("line 2: not JSON"), skip.skipped().get(0));
        assertEquals("line 4: a prompt/completion example in a file of text examples (from its first line)", skip.skipped().get(1));
        assertEquals("line 5: \"text\" must be a non-empty string", skip.skipped().get(2));
        var fail = assertThrows(IllegalArgumentException.class, () -> Examples.read(f, Examples.OnBadLine.FAIL));
        assertTrue(fail.getMessage().equals(f + " " + skip.skipped().get(0) + "; fix it, or pass --on-bad-line skip"), fail.getMessage());
        var empty = assertThrows(IllegalArgumentException.class, () -> Examples.read(write(dir, ""), Examples.OnBadLine.SKIP));
        assertEquals(dir.resolve("data.jsonl") + " has no examples", empty.getMessage());
        var noAssistant = assertThrows(IllegalArgumentException.class,
                () -> Examples.read(write(dir, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"), Examples.OnBadLine.FAIL));
        assertTrue(noAssistant.getMessage().endsWith("line 1: no assistant turn to train on; fix it, or pass --on-bad-line skip"), noAssistant.getMessage());
    }

    @Test
    void aTemplatesOwnRefusalIsOneLine() {
        var t = new ChatTemplate("{% if messages[0]['role'] != 'user' %}{{ raise_exception('conversations start with the user') }}{% endif %}ok", null, null);
        assertEquals("ok", t.render(List.of(new ChatTemplate.Message("user", "hi")), false));
        var e = assertThrows(IllegalArgumentException.class, () -> t.render(List.of(new ChatTemplate.Message("assistant", "hi")), false));
        assertTrue(e.getMessage().contains("conversations start with the user"), e.getMessage());
    }
}
