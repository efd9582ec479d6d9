package dev.strata.runtime;

/**
 * The two 8-bit float formats of FP8 training (OCP FP8, as NVIDIA's tensor cores read them): E4M3 (bias 7, no
 * infinities, max ±448) for weights and activations, E5M2 (bias 15, IEEE-like, max ±57344) for gradients. Encoding
 * rounds to nearest even and saturates to ±max, as PTX's {@code cvt.rn.satfinite} does, so the CPU and the GPU
 * agree bit for bit; NaN stays NaN.
 */
public enum Fp8 {
    E4M3(DType.FP8_E4M3, 3, 7, 448.0, 0x7f),
    E5M2(DType.FP8_E5M2, 2, 15, 57344.0, 0x7f);

    private final DType dtype;
    private final int mantissaBits, bias, nanCode;
    private final double max;
    private final float[] decoded = new float[256];

    Fp8(DType dtype, int mantissaBits, int bias, double max, int nanCode) {
        this.dtype = dtype;
        this.mantissaBits = mantissaBits;
        this.bias = bias;
        this.max = max;
        this.nanCode = nanCode;
        for (int code = 0; code < 256; code++) decoded[code] = (float) decodeBits(code);
    }

    public DType dtype() { return dtype; }

    /** The largest finite value. */
    public double max() { return max; }

    public static Fp8 of(DType d) {
        for (Fp8 f : values()) if (f.dtype == d) return f;
        throw new IllegalArgumentException(d + " is not an FP8 dtype");
    }

    /** The value of a code (its low 8 bits). */
    public float decode(int code) { return decoded[code & 0xff]; }

    /** The code nearest to x (ties to even), saturated to ±max. */
    public byte encode(double x) {
        if (Double.isNaN(x)) return (byte) nanCode;
        int sign = x < 0 || (x == 0 && 1 / x < 0) ? 0x80 : 0;
        double a = Math.min(Math.abs(x), max);
        int minExponent = 1 - bias; // of the smallest normal
        int e = Math.max(Math.getExponent(a), minExponent);
        double quantum = Math.scalb(1.0, e - mantissaBits);
        double r = Math.min(Math.rint(a / quantum) * quantum, max);
        if (r == 0) return (byte) sign;
        int re = Math.getExponent(r);
        if (re < minExponent) return (byte) (sign | (int) (r / Math.scalb(1.0, minExponent - mantissaBits))); // subnormal
        int mantissa = (int) (r / Math.scalb(1.0, re - mantissaBits)) - (1 << mantissaBits);
        return (byte) (sign | (re + bias) << mantissaBits | mantissa);
    }

    private double decodeBits(int code) {
        int sign = (code & 0x80) != 0 ? -1 : 1, exponentBits = 7 - mantissaBits;
        int e = (code >> mantissaBits) & ((1 << exponentBits) - 1), m = code & ((1 << mantissaBits) - 1);
        // Called while the constants are built, so the format is told by its shape, not by identity.
        boolean e4m3 = mantissaBits == 3;
        if (e4m3 && e == 15 && m == 7) return Double.NaN;
        if (!e4m3 && e == 31) return m == 0 ? sign * Double.POSITIVE_INFINITY : Double.NaN;
        if (e == 0) return sign * Math.scalb((double) m, 1 - bias - mantissaBits);
        return sign * Math.scalb(1.0 + m / (double) (1 << mantissaBits), e - bias);
    }
}
