package dev.strata.trainer.finetune;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A model's chat template rendered as transformers renders it: Jinja (Jinjava) over {@code messages},
 * {@code add_generation_prompt}, {@code bos_token} and {@code eos_token}, with {@code raise_exception} for the
 * checks templates make.
 */
public final class ChatTemplate {
    /** One turn: role (system, user, assistant, ...) and its text. */
    public record Message(String role, String content) {}

    private final Jinjava jinja = new Jinjava();
    private final String template, bosToken, eosToken;

    public ChatTemplate(String template, String bosToken, String eosToken) {
        this.template = template;
        this.bosToken = bosToken;
        this.eosToken = eosToken;
        jinja.getGlobalContext().registerFunction(new ELFunctionDefinition("", "raise_exception", ChatTemplate.class, "raise", String.class));
    }

    /** The template's own refusal of a conversation (a role it does not know, turns out of order). */
    public static String raise(String message) { throw new IllegalArgumentException("the chat template refuses the conversation: " + message); }

    /** The conversation as text; addGenerationPrompt: followed by what opens the assistant's next turn. */
    public String render(List<Message> messages, boolean addGenerationPrompt) {
        List<Map<String, Object>> turns = new ArrayList<>();
        for (Message m : messages) turns.add(Map.of("role", m.role(), "content", m.content()));
        Map<String, Object> bindings = new LinkedHashMap<>();
        bindings.put("messages", turns);
        bindings.put("add_generation_prompt", addGenerationPrompt);
        bindings.put("bos_token", bosToken == null ? "" : bosToken);
        bindings.put("eos_token", eosToken == null ? "" : eosToken);
        var result = jinja.renderForResult(template, bindings);
        for (var error : result.getErrors())
            if (error.getSeverity() == com.hubspot.jinjava.interpret.TemplateError.ErrorType.FATAL) {
                for (Throwable t = error.getException(); t != null; t = t.getCause())
                    if (t instanceof IllegalArgumentException refusal) throw new IllegalArgumentException(refusal.getMessage()); // raise_exception's, under Jinjava's wrappers
                throw new IllegalArgumentException("the chat template cannot be rendered: " + error.getMessage());
            }
        return result.getOutput();
    }
}
