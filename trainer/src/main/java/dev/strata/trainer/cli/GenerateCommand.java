package dev.strata.trainer.cli;

import dev.strata.trainer.data.Gpt2Tokenizer;
import dev.strata.trainer.model.Transformer;
import dev.strata.trainer.train.TextGenerator;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Sample text from a checkpoint or a Hugging Face model (GPT-2 tokenizer, KV cache), printing tokens/s.")
final class GenerateCommand implements Callable<Integer> {
    @Mixin ModelSource source;

    @Option(names = "--prompt", defaultValue = "\n", description = "Text to continue (default: a newline).")
    String prompt;

    @Option(names = "--tokens", defaultValue = "100", description = "Tokens to generate (default ${DEFAULT-VALUE}).")
    int tokens;

    @Option(names = "--temperature", defaultValue = "0.8", description = "0 for greedy (default ${DEFAULT-VALUE}).")
    double temperature;

    @Option(names = "--top-k", defaultValue = "40", description = "Sample among the k likeliest tokens, 0 for all (default ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--top-p", defaultValue = "1.0", description = "Sample among the likeliest tokens holding this much probability (default ${DEFAULT-VALUE}: off).")
    double topP;

    @Option(names = "--repetition-penalty", defaultValue = "1.0",
            description = "Above 1, tokens already in the context become less likely (default ${DEFAULT-VALUE}: off).")
    double repetitionPenalty;

    @Option(names = "--seed", defaultValue = "1337", description = "Seed of the sampler (default ${DEFAULT-VALUE}).")
    long seed;

    @Override public Integer call() throws Exception {
        if (tokens < 1) throw new IllegalArgumentException("--tokens must be 1 or more, got " + tokens);
        var sampling = new TextGenerator.Sampling(temperature, topK, topP, repetitionPenalty, seed);
        ModelSource.Loaded loaded = source.load();
        Transformer model = loaded.model();
        if (model.config().vocabSize() < Gpt2Tokenizer.VOCAB_SIZE)
            throw new IllegalArgumentException(loaded.name() + " has a vocabulary of " + model.config().vocabSize()
                    + " tokens; generate encodes text with GPT-2's tokenizer, which needs " + Gpt2Tokenizer.VOCAB_SIZE);
        if (source.choice.model != null) refuseOtherTokenizers(source.choice.model);
        Gpt2Tokenizer tok = new Gpt2Tokenizer();
        int[] ids = tok.encode(prompt);
        System.out.print(prompt);
        StreamingText text = new StreamingText(tok);
        long t0 = System.nanoTime();
        int[] out = TextGenerator.generate(model, ids, tokens, sampling, text::add);
        double seconds = (System.nanoTime() - t0) / 1e9;
        text.flush();
        System.out.printf(Locale.ROOT, "%n---- %d tokens in %.2f s: %.1f tokens/s (%s, prompt %d tokens) ----%n",
                out.length, seconds, out.length / seconds, model.backend().device(), ids.length);
        return 0;
    }

    /** A Hugging Face directory whose tokenizer is not GPT-2's would get ids that mean other words. */
    static void refuseOtherTokenizers(java.nio.file.Path dir) throws java.io.IOException {
        java.nio.file.Path config = dir.resolve("tokenizer_config.json");
        if (!java.nio.file.Files.isRegularFile(config)) return;
        var tokenizer = new com.fasterxml.jackson.databind.ObjectMapper().readTree(config.toFile()).path("tokenizer_class").asText("");
        if (!tokenizer.isEmpty() && !tokenizer.startsWith("GPT2Tokenizer"))
            throw new IllegalArgumentException(config + " names tokenizer_class " + tokenizer
                    + "; generate encodes text with GPT-2's tokenizer only (GPT2Tokenizer)");
    }

    /** Prints tokens as they come, holding back bytes that do not yet form whole UTF-8 characters. */
    static final class StreamingText {
        private final Gpt2Tokenizer tok;
        private final java.util.List<Integer> pending = new java.util.ArrayList<>();

        StreamingText(Gpt2Tokenizer tok) { this.tok = tok; }

        void add(int token) {
            pending.add(token);
            String s = tok.decode(pending.stream().mapToInt(Integer::intValue).toArray());
            if (s.indexOf('\uFFFD') >= 0 && pending.size() < 4) return;
            System.out.print(s);
            System.out.flush();
            pending.clear();
        }

        void flush() {
            if (!pending.isEmpty()) System.out.print(tok.decode(pending.stream().mapToInt(Integer::intValue).toArray()));
            pending.clear();
        }
    }
}
