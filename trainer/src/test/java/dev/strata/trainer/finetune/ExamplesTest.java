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
