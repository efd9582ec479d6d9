package dev.strata.trainer.cli;

import dev.strata.config.JobConfig;
import dev.strata.trainer.finetune.Finetune;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "finetune", mixinStandardHelpOptions = true,
        description = "Fine-tune a Hugging Face model on JSONL examples (text, prompt/completion or chat) into a Hugging Face model directory.")
final class FinetuneCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "HF_DIR", description = "The model directory (config.json, safetensors, tokenizer.json).") Path model;
    @Option(names = "--data", required = true, paramLabel = "FILE", description = "Training examples, one JSON object a line.") Path data;
    @Option(names = "--eval", paramLabel = "FILE", description = "Evaluation examples of the same kind.") Path eval;
    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Where the fine-tuned model goes (the run's checkpoints in DIR/strata-run).") Path out;

    @Option(names = "--lora-rank", paramLabel = "R", description = "LoRA adapters of this rank on every linear but the head (default 16).") Integer loraRank;
    @Option(names = "--lora-alpha", paramLabel = "A", description = "Adapters scale by alpha / rank (default 2 x rank).") Double loraAlpha;
    @Option(names = "--full", description = "Train every weight instead of LoRA adapters.") boolean full;
    @Option(names = "--save-adapter", description = "Write a PEFT adapter (adapter_model.safetensors, adapter_config.json) instead of merged weights.") boolean saveAdapter;
    @Option(names = "--fp8", description = "The linears' GEMMs in FP8 (HALO), on the GPU.") boolean fp8;
    @Option(names = "--epochs", paramLabel = "N", description = "Passes over the data (default 1).") Integer epochs;
    @Option(names = "--steps", paramLabel = "N", description = "Optimizer steps, instead of --epochs.") Long steps;
    @Option(names = "--lr", paramLabel = "LR", description = "Peak learning rate (default 2e-4 with LoRA, 2e-5 full).") Double lr;
    @Option(names = "--seq-len", paramLabel = "T", description = "Tokens a row (default 1024, or the model's limit).") Integer seqLen;
    @Option(names = "--batch", paramLabel = "B", description = "Examples a micro-batch (default: what fits the GPU).") Integer batch;
    @Option(names = "--accum", paramLabel = "N", description = "Micro-batches a step (default: 16 examples a step).") Integer accum;
    @Option(names = "--eval-every", paramLabel = "N", description = "Steps between evaluations (default: five in a run).") Integer evalEvery;
    @Option(names = "--on-bad-line", paramLabel = "skip|fail", description = "A line that is not a valid example: skip it (counted) or refuse the file (default).") String onBadLine;
    @Option(names = "--too-long", paramLabel = "truncate|drop", description = "An example longer than --seq-len: cut it (default) or leave it out.") String tooLong;
    @Option(names = "--packing", negatable = true, description = "Pack short examples into full rows (attention and positions restart at each); "
            + "default: when they average under half of --seq-len.") Boolean packing;
    @Option(names = "--train-on-inputs", description = "Train on prompts and user turns too, not only completions and assistant turns.") boolean trainOnInputs;
    @Option(names = "--chat-template", paramLabel = "FILE", description = "A Jinja chat template, for a tokenizer that ships none (or to replace its own).") Path chatTemplate;
    @Option(names = "--backend", paramLabel = "cpu|cuda|auto", description = "Where to train (default auto: the GPU when there is one).") String backend = "auto";
    @Option(names = "--resume", description = "Continue the fine-tune in --out from its latest checkpoint.") boolean resume;
    @Option(names = "--overwrite", description = "Replace what a fine-tune wrote in --out (nothing else there is touched).") boolean overwrite;
    @Option(names = "--exit-after", paramLabel = "STEP", hidden = true, description = "Checkpoint and stop after this step, as if interrupted.") long exitAfter;
    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Any job setting, e.g. --set training.weight_decay=0.01 (repeatable).")
    List<String> overrides = new ArrayList<>();

    @Override public Integer call() throws Exception {
        if (resume && overwrite) throw new IllegalArgumentException("--resume and --overwrite exclude each other");
        if (full && (loraRank != null || loraAlpha != null)) throw new IllegalArgumentException("--full trains every weight: leave out --lora-rank and --lora-alpha");
        if (full && saveAdapter) throw new IllegalArgumentException("--save-adapter needs LoRA: a full fine-tune has no adapter");
        if (steps != null && epochs != null) throw new IllegalArgumentException("give --epochs or --steps, not both");
        int rank = full ? 0 : loraRank == null ? 16 : loraRank;
        if (!full && rank < 1) throw new IllegalArgumentException("--lora-rank must be 1 or more, got " + rank + "; --full trains every weight");
        boolean gpu = dev.strata.trainer.train.Models.onGpu(backend);
        List<String> settings = new ArrayList<>();
        Set<String> chosen = new LinkedHashSet<>();
        settings.add("run_dir = " + quote(out.resolve(dev.strata.trainer.finetune.FinetuneOutput.RUN).toString()));
        settings.add("backend = " + backend);
        settings.add("dtype = " + (gpu ? "bf16" : "f32"));
        settings.add("model.init_from = " + quote(model.toString()));
        settings.add("finetune.data = " + quote(data.toString()));
        if (eval != null) settings.add("finetune.eval_data = " + quote(eval.toString()));
        if (chatTemplate != null) settings.add("finetune.chat_template = " + quote(chatTemplate.toString()));
        if (onBadLine != null) settings.add("finetune.on_bad_line = " + quote(onBadLine));
        if (tooLong != null) settings.add("finetune.too_long = " + quote(tooLong));
        settings.add("finetune.train_on_inputs = " + trainOnInputs);
        if (packing != null) settings.add("finetune.packing = " + packing);
        settings.add("finetune.save = " + (saveAdapter ? "adapter" : "merged"));
        settings.add("lora.rank = " + rank);
        settings.add(String.format(Locale.ROOT, "lora.alpha = %s", loraAlpha != null ? loraAlpha : 2.0 * Math.max(rank, 1)));
        if (fp8) settings.add("precision.linear = fp8");
        double peak = lr != null ? lr : full ? 2e-5 : 2e-4;
        // transformers' Trainer defaults (AdamW betas 0.9/0.999, no weight decay, cosine to 0), so runs compare with theirs
        settings.add(String.format(Locale.ROOT, "training { lr = %s, min_lr = 0, beta2 = 0.999, weight_decay = 0.0 }", peak));
        settings.add("checkpoint.keep_last = 2");
        settings.add("sample.tokens = 0");
        settings.add("log.every = 1");
        choose(settings, chosen, "training.steps", steps);
        choose(settings, chosen, "training.seq_len", seqLen);
        choose(settings, chosen, "training.batch_size", batch);
        choose(settings, chosen, "training.grad_accum_steps", accum);
        choose(settings, chosen, "eval.every", evalEvery);
        for (String o : overrides) {
            int eq = o.indexOf('=');
            if (eq > 0) chosen.add(o.substring(0, eq).trim());
        }
        JobConfig job = TrainCommand.withOverrides(JobConfig.parse(String.join("\n", settings), "strata finetune"), overrides);
        var r = Finetune.run(new Finetune.Request(job, chosen, epochs == null ? 1 : epochs, out, resume, overwrite, exitAfter), System.out);
        TrainCommand.printDone(r.training());
        return 0;
    }

    private static void choose(List<String> settings, Set<String> chosen, String key, Number value) {
        if (value == null) return;
        settings.add(key + " = " + value);
        chosen.add(key);
    }

    private static String quote(String s) { return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\""; }
}
