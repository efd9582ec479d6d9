/**
 * {@code strata finetune}'s data: JSONL examples (text, prompt/completion, chat) turned into token ids with the
 * model's own tokenizer and chat template, and which of those tokens the loss trains on.
 */
package dev.strata.trainer.finetune;
