/** The {@code strata} command line (picocli): train, demo, data, model, ckpt. */
package dev.strata.trainer.cli;
