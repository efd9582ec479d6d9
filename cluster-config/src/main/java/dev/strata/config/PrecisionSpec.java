package dev.strata.config;

import java.util.List;

/**
 * How linear layers compute: {@code linear = bf16} keeps them dense in the job's dtype; {@code fp8} runs their GEMMs
 * in FP8 with Hadamard rotations at the given level (none, fwd, fwd+dgrad, all) and block, except for layers whose
 * name contains an {@code exclude} entry; {@code hadamardBlock} 0 stands for {@code full}, a block over each whole
 * contracted dimension. {@code scaling} is current (each tensor's own amax), delayed (the
 * largest amax of the last {@code amaxHistory} steps) or rowwise (one scale per token and per channel).
 */
public record PrecisionSpec(String linear, String rotation, int hadamardBlock, String scaling, int amaxHistory, List<String> exclude) {

    public boolean fp8() { return linear.equals("fp8"); }

    static PrecisionSpec from(Fields f) {
        String block = f.string("precision.hadamard_block");
        f.require(block.equals("full") || block.matches("[0-9]{1,9}"), "precision.hadamard_block must be a power of two or full, got " + block);
        var p = new PrecisionSpec(f.oneOf("precision.linear", "bf16", "fp8"), f.oneOf("precision.rotation", "none", "fwd", "fwd+dgrad", "all"),
                block.equals("full") ? 0 : Integer.parseInt(block), f.oneOf("precision.scaling", "current", "delayed", "rowwise"), f.positive("precision.amax_history"),
                f.strings("precision.exclude"));
        f.require(p.amaxHistory >= 2, "precision.amax_history must be at least 2, got " + p.amaxHistory);
        f.require(p.hadamardBlock == 0 || (Integer.bitCount(p.hadamardBlock) == 1 && p.hadamardBlock >= 2),
                "precision.hadamard_block must be a power of two of at least 2, or full; got " + block);
        return p;
    }
}
