/**
 * Training data: GPT-2 BPE tokenization, memory-mapped token shards (header + uint16/uint32 tokens), preparation from
 * .txt/.jsonl, and a seeded sampler whose position is saved in checkpoints.
 */
package dev.strata.trainer.data;
