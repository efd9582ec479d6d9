/** The training loop and what it turns: AdamW, the learning-rate schedule, gradient clipping, metrics. */
package dev.strata.trainer.train;
