package dev.strata.trainer.finetune;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A fine-tuning data file: JSONL lines of {@code {"text"}}, {@code {"prompt", "completion"}} or {@code {"messages":
 * [{"role", "content"}, ...]}} (chat), the kind taken from the first line and required of every other. A bad line
 * is reported with its number and skipped, or refused ({@code --on-bad-line skip|fail}).
 */
public final class Examples {
    public enum Kind {
        TEXT("text"), PROMPT_COMPLETION("prompt/completion"), CHAT("chat");

        final String label;

        Kind(String label) { this.label = label; }
    }

    /** One example and the line it came from; the fields of its kind are set, the others null. */
    public record Example(int line, String text, String prompt, String completion, List<ChatTemplate.Message> messages) {}

    /** The file's examples, its kind, and the bad lines skipped, each "line N: why". */
    public record Loaded(Path file, Kind kind, List<Example> examples, List<String> skipped) {}

    /** What becomes of a bad line. */
    public enum OnBadLine { SKIP, FAIL }

    private Examples() {}

    public static Loaded read(Path file, OnBadLine onBad) {
        if (!Files.isRegularFile(file)) throw new IllegalArgumentException(file + " is not a file");
        ObjectMapper json = new ObjectMapper();
        Kind kind = null;
        List<Example> examples = new ArrayList<>();
        List<String> skipped = new ArrayList<>();
        try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            int number = 0;
            for (String line; (line = in.readLine()) != null; ) {
                number++;
                if (line.isBlank()) continue;
                String why;
                try {
                    JsonNode node = json.readTree(line);
                    Kind k = node != null && node.isObject() ? kindOf(node) : null;
                    if (k == null) why = "expected an object with \"text\", \"prompt\" and \"completion\", or \"messages\"";
                    else if (kind != null && k != kind) why = "a " + k.label + " example in a file of " + kind.label + " examples (from its first line)";
                    else {
                        Example e = example(number, node, k);
                        why = problem(e, k);
                        if (why == null) {
                            kind = k;
                            examples.add(e);
                            continue;
                        }
                    }
                } catch (com.fasterxml.jackson.core.JacksonException e) {
                    why = "not JSON (" + e.getOriginalMessage() + ")";
                }
                String report = "line " + number + ": " + why;
                if (onBad == OnBadLine.FAIL) throw new IllegalArgumentException(file + " " + report + "; fix it, or pass --on-bad-line skip");
                skipped.add(report);
            }
        } catch (IOException e) {
            throw new IllegalArgumentException(file + " cannot be read: " + e.getMessage());
        }
        if (examples.isEmpty())
            throw new IllegalArgumentException(file + " has no examples" + (skipped.isEmpty() ? "" : " (" + skipped.size() + " bad lines, the first " + skipped.get(0) + ")"));
        return new Loaded(file, kind, List.copyOf(examples), List.copyOf(skipped));
    }

    private static Kind kindOf(JsonNode node) {
        if (node.has("messages")) return Kind.CHAT;
        if (node.has("prompt") || node.has("completion")) return Kind.PROMPT_COMPLETION;
        if (node.has("text")) return Kind.TEXT;
        return null;
    }

    private static Example example(int line, JsonNode node, Kind kind) {
        return switch (kind) {
            case TEXT -> new Example(line, text(node, "text"), null, null, null);
            case PROMPT_COMPLETION -> new Example(line, null, text(node, "prompt"), text(node, "completion"), null);
            case CHAT -> {
                List<ChatTemplate.Message> messages = new ArrayList<>();
                for (JsonNode m : node.path("messages")) messages.add(new ChatTemplate.Message(text(m, "role"), text(m, "content")));
                yield new Example(line, null, null, null, node.path("messages").isArray() ? messages : null);
            }
        };
    }

    private static String text(JsonNode node, String field) { return node.path(field).isTextual() ? node.get(field).asText() : null; }

    /** Why an example of its kind cannot train, or null. */
    private static String problem(Example e, Kind kind) {
        return switch (kind) {
            case TEXT -> e.text() == null || e.text().isEmpty() ? "\"text\" must be a non-empty string" : null;
            case PROMPT_COMPLETION -> e.prompt() == null ? "\"prompt\" must be a string"
                    : e.completion() == null || e.completion().isEmpty() ? "\"completion\" must be a non-empty string" : null;
            case CHAT -> {
                if (e.messages() == null || e.messages().isEmpty()) yield "\"messages\" must be a non-empty list";
                for (int i = 0; i < e.messages().size(); i++)
                    if (e.messages().get(i).role() == null || e.messages().get(i).content() == null)
                        yield "messages[" + i + "] needs a string \"role\" and \"content\"";
                yield e.messages().stream().anyMatch(m -> m.role().equals("assistant")) ? null : "no assistant turn to train on";
            }
        };
    }
}
