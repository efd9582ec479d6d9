/**
 * The decoder-only transformer (GPT-2 and Llama families by config), one class per layer with {@code forward} and
 * {@code backward} side by side. Layers call only {@link dev.strata.runtime.Backend} ops and never know about ranks.
 */
package dev.strata.trainer.model;
