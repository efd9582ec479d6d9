/** Hugging Face interop: config.json to {@link dev.strata.trainer.model.ModelConfig} and tensor names both ways. */
package dev.strata.trainer.hf;
