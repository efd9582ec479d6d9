package dev.strata.trainer.finetune;

import dev.strata.config.FinetuneSpec;
import dev.strata.config.JobConfig;
import dev.strata.trainer.data.Windows;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A fine-tune's examples, read, tokenized by the model's own tokenizer and fitted to training.seq_len: the training
 * rows (packed, or one example a row), the evaluation rows (one a row, rounded up to whole batches of b), and what was
 * left out, cut or packed on the way.
 */
public record FinetuneData(Examples.Kind kind, Windows train, int trainExamples, long trainedTokens, ExampleWindows eval, List<String> report) {

    /** finetune.packing = auto packs when examples average under this share of a row. */
    static final double PACK_BELOW = 0.5;

    /** The job's finetune.data (and eval_data), tokenized with model.init_from's tokenizer; evaluation in batches of b. */
    public static FinetuneData read(JobConfig job, int b) {
        FinetuneSpec spec = job.finetune();
        Path model = Path.of(job.model().initFrom());
        int t = job.training().seqLen();
        Examples.OnBadLine onBad = spec.onBadLine().equals("skip") ? Examples.OnBadLine.SKIP : Examples.OnBadLine.FAIL;
        try (ModelTokenizer tok = ModelTokenizer.load(model, spec.chatTemplate().isEmpty() ? null : Path.of(spec.chatTemplate()))) {
            List<String> report = new ArrayList<>();
            Examples.Loaded train = Examples.read(Path.of(spec.data()), onBad);
            Examples.Loaded eval = spec.evalData().isEmpty() ? null : Examples.read(Path.of(spec.evalData()), onBad);
            if (eval != null && eval.kind() != train.kind())
                throw new IllegalArgumentException(spec.evalData() + " holds " + eval.kind().label + " examples, " + spec.data() + " " + train.kind().label
                        + " ones; evaluate on data of the kind that trains");
            ChatTemplate template = null;
            if (train.kind() == Examples.Kind.CHAT) {
                if (tok.chatTemplate() == null)
                    throw new IllegalArgumentException(spec.data() + " holds chat examples, but the tokenizer in " + model + " has no chat template "
                            + "(no chat_template.jinja, no chat_template in tokenizer_config.json); give one with --chat-template FILE");
                template = new ChatTemplate(tok.chatTemplate(), tok.bosToken(), tok.eosToken());
            }
            int pad = Math.max(0, tok.eosId()); // padding is never attended to by a real position nor trained on
            boolean truncate = spec.tooLong().equals("truncate");
            FinetuneBatches.Fitted trainFit = fit(train, tok, template, spec, t, truncate);
            if (trainFit.examples().isEmpty())
                throw new IllegalArgumentException(spec.data() + ": no example is left to train on (" + trainFit.describe(t) + ")");
            report.add(describe(train, trainFit, t));
            ExampleWindows evalRows = null;
            if (eval != null) {
                FinetuneBatches.Fitted evalFit = fit(eval, tok, template, spec, t, truncate);
                if (evalFit.examples().isEmpty()) throw new IllegalArgumentException(spec.evalData() + ": no example is left to evaluate (" + evalFit.describe(t) + ")");
                long rows = (evalFit.examples().size() + b - 1) / b * (long) b;
                evalRows = new ExampleWindows(evalFit.examples(), t, pad, rows);
                report.add(describe(eval, evalFit, t));
            }
            List<TokenizedExample> xs = trainFit.examples();
            double mean = xs.stream().mapToInt(TokenizedExample::positions).average().orElse(0);
            boolean pack = spec.packing().equals("true") || spec.packing().equals("auto") && mean < PACK_BELOW * t;
            Windows rows = new ExampleWindows(xs, t, pad);
            if (pack) {
                PackedExamples packed = new PackedExamples(xs, t, pad);
                report.add(String.format(Locale.ROOT, "packed %,d examples (%.0f tokens on average) into %,d rows of %d, %.1f%% filled", xs.size(), mean,
                        packed.windows(), t, 100 * packed.fill()));
                rows = packed;
            }
            long trained = xs.stream().mapToLong(TokenizedExample::trainedCount).sum();
            return new FinetuneData(train.kind(), rows, xs.size(), trained, evalRows, List.copyOf(report));
        }
    }

    private static FinetuneBatches.Fitted fit(Examples.Loaded data, ModelTokenizer tok, ChatTemplate template, FinetuneSpec spec, int t, boolean truncate) {
        List<TokenizedExample> xs = new ArrayList<>(data.examples().size());
        for (Examples.Example e : data.examples()) {
            try {
                xs.add(TokenizedExample.of(e, data.kind(), tok, template, spec.trainOnInputs()));
            } catch (IllegalArgumentException err) {
                throw new IllegalArgumentException(data.file() + ", line " + e.line() + ": " + err.getMessage());
            }
        }
        return FinetuneBatches.fit(xs, t, truncate);
    }

    private static String describe(Examples.Loaded data, FinetuneBatches.Fitted fit, int t) {
        long tokens = fit.examples().stream().mapToLong(x -> x.ids().length).sum(), trained = fit.examples().stream().mapToLong(TokenizedExample::trainedCount).sum();
        return String.format(Locale.ROOT, "%s: %,d %s examples, %,d tokens (%,d trained)%s; %s", data.file(), fit.examples().size(), data.kind().label,
                tokens, trained, data.skipped().isEmpty() ? "" : ", " + data.skipped().size() + " bad lines skipped", fit.describe(t));
    }
}
