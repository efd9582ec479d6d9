package dev.strata.trainer.finetune;

import java.util.Arrays;
import java.util.List;

/**
 * An example as token ids and which of them the loss trains on: a text's every token; a completion's tokens and
 * the end-of-sequence after them, not the prompt's; in a chat, what each assistant turn adds to the rendered
 * conversation (its text and the tokens that close the turn), not the turns before it. trainOnInputs trains on all.
 */
public record TokenizedExample(int line, int[] ids, boolean[] trained) {

    public int trainedCount() {
        int n = 0;
        for (boolean t : trained) if (t) n++;
        return n;
    }

    /** The positions it fills in a row: L tokens predict L - 1. */
    public int positions() { return ids.length - 1; }

    /**
     * Writes its positions into inputs and targets from index at: each token, and the next one as its target where
     * that one trains (-1 elsewhere). Returns how many targets train.
     */
    int writeInto(int[] inputs, int[] targets, int at) {
        int n = 0;
        for (int i = 0; i < positions(); i++) {
            inputs[at + i] = ids[i];
            targets[at + i] = trained[i + 1] ? ids[i + 1] : -1;
            if (trained[i + 1]) n++;
        }
        return n;
    }

    /** Refuses, by line, a token at or above the model's vocabulary size: the tokenizer.json is not the model's. */
    static void checkVocabulary(List<TokenizedExample> examples, int vocabSize) {
        for (TokenizedExample x : examples)
            for (int id : x.ids())
                if (id >= vocabSize)
                    throw new IllegalArgumentException("line " + x.line() + ": token " + id + " lies outside the model's vocab_size " + vocabSize
                            + "; the tokenizer.json is not this model's");
    }

    public static TokenizedExample of(Examples.Example e, Examples.Kind kind, ModelTokenizer tok, ChatTemplate template, boolean trainOnInputs) {
        int eos = tok.eosId();
        TokenizedExample x = switch (kind) {
            case TEXT -> {
                int[] ids = withEos(tok.encode(e.text()), eos);
                yield new TokenizedExample(e.line(), ids, filled(ids.length, true));
            }
            case PROMPT_COMPLETION -> {
                int[] prompt = tok.encode(e.prompt()), completion = withEos(tok.encode(e.completion()), eos);
                int[] ids = Arrays.copyOf(prompt, prompt.length + completion.length);
                System.arraycopy(completion, 0, ids, prompt.length, completion.length);
                boolean[] trained = filled(ids.length, true);
                Arrays.fill(trained, 0, prompt.length, false);
                yield new TokenizedExample(e.line(), ids, trained);
            }
            case CHAT -> chat(e, tok, template);
        };
        return trainOnInputs ? new TokenizedExample(x.line, x.ids, filled(x.ids.length, true)) : x;
    }

    /** The rendered conversation, tokenized once; a token trains when its characters lie in what an assistant turn added. */
    private static TokenizedExample chat(Examples.Example e, ModelTokenizer tok, ChatTemplate template) {
        List<ChatTemplate.Message> m = e.messages();
        String full = template.render(m, false);
        boolean[] trainedChars = new boolean[full.length()];
        for (int i = 0; i < m.size(); i++) {
            if (!m.get(i).role().equals("assistant")) continue;
            String through = template.render(m.subList(0, i + 1), false);
            int from = template.render(m.subList(0, i), true).length(), to = through.length();
            if (!full.startsWith(through))
                throw new IllegalArgumentException("line " + e.line() + ": the chat template renders a conversation's start differently from the whole, "
                        + "so the assistant's tokens cannot be found; train on every token with --train-on-inputs");
            Arrays.fill(trainedChars, Math.min(from, to), to, true);
        }
        ModelTokenizer.Spans s = tok.encodeWithSpans(full);
        boolean[] trained = new boolean[s.ids().length];
        for (int i = 0; i < trained.length; i++) trained[i] = s.start()[i] >= 0 && s.start()[i] < trainedChars.length && trainedChars[s.start()[i]];
        return new TokenizedExample(e.line(), s.ids(), trained);
    }

    private static int[] withEos(int[] ids, int eos) {
        if (eos < 0 || ids.length > 0 && ids[ids.length - 1] == eos) return ids;
        int[] out = Arrays.copyOf(ids, ids.length + 1);
        out[ids.length] = eos;
        return out;
    }

    private static boolean[] filled(int n, boolean value) {
        boolean[] b = new boolean[n];
        Arrays.fill(b, value);
        return b;
    }
}
