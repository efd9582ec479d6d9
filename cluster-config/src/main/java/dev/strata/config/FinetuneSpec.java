package dev.strata.config;

/**
 * A fine-tune of model.init_from on JSONL examples ({@code strata finetune}): the training and evaluation files,
 * what a bad line or an over-long example does, whether the prompt trains too, a chat template for a tokenizer
 * without one, what the output directory holds (merged weights or a PEFT adapter), and whether short examples are
 * packed several to a row.
 */
public record FinetuneSpec(String data, String evalData, String onBadLine, boolean trainOnInputs, String tooLong, String chatTemplate, String save,
                           String packing) {
    public boolean enabled() { return !data.isEmpty(); }

    public boolean saveAdapter() { return save.equals("adapter"); }

    static FinetuneSpec from(Fields f) {
        var s = new FinetuneSpec(f.string("finetune.data"), f.string("finetune.eval_data"), f.oneOf("finetune.on_bad_line", "fail", "skip"),
                f.bool("finetune.train_on_inputs"), f.oneOf("finetune.too_long", "truncate", "drop"), f.string("finetune.chat_template"),
                f.oneOf("finetune.save", "merged", "adapter"), f.oneOf("finetune.packing", "auto", "true", "false"));
        f.require(!s.enabled() || !f.string("model.init_from").isEmpty(), "finetune.data needs model.init_from, the Hugging Face directory to fine-tune");
        f.require(!s.saveAdapter() || f.integer("lora.rank") > 0, "finetune.save = adapter needs lora.rank > 0: a full fine-tune has no adapter");
        return s;
    }
}
