package dev.strata.runtime;

import java.util.Locale;

/** Element types a tensor can hold; the names are the ones safetensors uses on disk. */
public enum DType {
    F64(8, "F64", true),
    F32(4, "F32", true),
    BF16(2, "BF16", true),
    F16(2, "F16", true),
    FP8_E4M3(1, "F8_E4M3", true),
    FP8_E5M2(1, "F8_E5M2", true),
    I64(8, "I64", false),
    I32(4, "I32", false),
    U8(1, "U8", false);

    private final int byteSize;
    private final String safetensorsName;
    private final boolean floating;

    DType(int byteSize, String safetensorsName, boolean floating) {
        this.byteSize = byteSize;
        this.safetensorsName = safetensorsName;
        this.floating = floating;
    }

    public int byteSize() { return byteSize; }

    public boolean isFloatingPoint() { return floating; }

    /** The dtype string in a safetensors header ("F32", "BF16", ...). */
    public String safetensorsName() { return safetensorsName; }

    public static DType fromSafetensorsName(String name) {
        for (DType d : values()) if (d.safetensorsName.equals(name)) return d;
        throw new IllegalArgumentException("unsupported safetensors dtype '" + name + "'");
    }

    /** Parses the lower-case name used in configs and CLI flags: f64, f32, bf16, ... */
    public static DType parse(String name) {
        String n = name.trim().toUpperCase(Locale.ROOT);
        for (DType d : values()) if (d.name().equals(n)) return d;
        throw new IllegalArgumentException("unknown dtype '" + name + "' (expected one of f64, f32, bf16, f16)");
    }

    public String configName() { return name().toLowerCase(Locale.ROOT); }
}
