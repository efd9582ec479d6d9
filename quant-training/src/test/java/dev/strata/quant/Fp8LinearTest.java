package dev.strata.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.DenseLinear;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Fp8Linear on the CPU: the rotations leave the layer exact, and FP8 errors against F64 with outlier channels. */
class Fp8LinearTest {
    static final Backend CPU = CpuBackend.INSTANCE;
    static final int N = 256, IN = 256, OUT = 128;

    /** y, dx, dW of one forward and backward on the same data. */
    record Pass(double[] y, double[] dx, double[] dw) {}

    static Pass run(Linear layer, Parameter w, double[] x, double[] dy, DType dtype) {
        try (Tensor xt = CPU.fromDoubles(x, dtype, N, IN); Tensor dyt = CPU.fromDoubles(dy, dtype, N, OUT);
             Tensor y = layer.forward(xt); Tensor dx = layer.backward(dyt)) {
            return new Pass(CPU.toDoubles(y), CPU.toDoubles(dx), CPU.toDoubles(w.grad()));
        }
    }

    static Parameter weight(double[] w, DType dtype) {
        return new Parameter("w", Parameter.Kind.LINEAR_WEIGHT, CPU.fromDoubles(w, dtype, OUT, IN));
    }

    static Pass dense(double[] w, double[] x, double[] dy) {
        Parameter p = weight(w, DType.F64);
        return run(new DenseLinear(p, null), p, x, dy, DType.F64);
    }

    static Pass fp8(Rotation rotation, boolean quantize, double[] w, double[] x, double[] dy, DType dtype) {
        Parameter p = weight(w, dtype);
        return run(new Fp8Linear("layers.0.feed_forward.w1", p, null, new Fp8Linear.Settings(rotation, 64, quantize)), p, x, dy, dtype);
    }

    static double relativeError(double[] got, double[] want) {
        double num = 0, den = 0;
        for (int i = 0; i < got.length; i++) {
            num += (got[i] - want[i]) * (got[i] - want[i]);
            den += want[i] * want[i];
        }
        return Math.sqrt(num / den);
    }

    static double[] gaussian(SplittableRandom rng, int n, double sd) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = sd * rng.nextGaussian();
        return v;
    }

    /** Delayed scaling takes its scale from earlier steps' amaxes and records this step's while it quantizes. */
    @Test
    void delayedScalingFollowsTheAmaxHistory() {
        double[] x = gaussian(new SplittableRandom(4), 64 * 32, 1), half = x.clone();
        for (int i = 0; i < half.length; i++) half[i] /= 2;
        double amax = Arrays.stream(x).map(Math::abs).max().orElseThrow();
        try (Tensor history = CPU.zeros(DType.F32, 4); Tensor t1 = CPU.fromDoubles(x, DType.F32, 64, 32); Tensor t2 = CPU.fromDoubles(half, DType.F32, 64, 32);
             var first = CPU.quantizeFp8(t1, DType.FP8_E4M3, false, 0, history, false)) {
            assertEquals((float) amax, CPU.toDoubles(history)[0], "the first step records its amax in slot 0");
            assertEquals(amax / 448, CPU.toDoubles(first.scaleInv())[0], 1e-6 * amax, "and scales by it (current scaling)");
            CPU.rollAmaxHistories(List.of(history));
            try (var second = CPU.quantizeFp8(t2, DType.FP8_E4M3, false, 0, history, true)) {
                assertEquals(amax / 448, CPU.toDoubles(second.scaleInv())[0], 1e-6 * amax, "the next step scales by the history's amax");
                assertArrayEquals(new double[] {(float) (amax / 2), (float) amax, 0, 0}, CPU.toDoubles(history), "and records its own in slot 0");
            }
        }
    }

    /**
     * Loading weights marks them updated, like an optimizer step, but leaves the amax histories empty: the first
     * step after a load (resume, init_from) must still scale by each tensor's own amax, then delayed scaling takes
     * over. Delayed and current scaling then agree on the first step, and on a second step of the same data.
     */
    @Test
    void delayedScalingStartsFromARecordedStepNotFromALoad() {
        SplittableRandom rng = new SplittableRandom(8);
        double[] w = gaussian(rng, OUT * IN, 0.05), x = gaussian(rng, N * IN, 1), dy = gaussian(rng, N * OUT, 1e-4);
        double[][] current = twoSteps(new Fp8Linear.Settings(Rotation.ALL, 64, true), w, x, dy);
        double[][] delayed = twoSteps(new Fp8Linear.Settings(Rotation.ALL, 64, true, Scaling.DELAYED, 8), w, x, dy);
        for (int i = 0; i < current.length; i++)
            assertArrayEquals(current[i], delayed[i], 1e-12, "output " + i + " of two steps after a load, current vs delayed scaling");
    }

    /** Load (markUpdated), step, update, step: y and dx of both steps. */
    static double[][] twoSteps(Fp8Linear.Settings settings, double[] w, double[] x, double[] dy) {
        Parameter p = weight(w, DType.F32);
        Fp8Linear layer = new Fp8Linear("layers.0.attention.wq", p, null, settings);
        p.markUpdated(); // as a checkpoint load does
        Pass first = run(layer, p, x, dy, DType.F32);
        layer.endStep(); // as an optimizer step does (the weight itself is unchanged here)
        p.markUpdated();
        Pass second = run(layer, p, x, dy, DType.F32);
        return new double[][] {first.y(), first.dx(), second.y(), second.dx()};
    }

    /**
     * wq, wk and wv read one x: made by one plan, the first quantizes it and the others take its operands (the
     * first one's amax history alone records x), with results bit for bit those of layers quantizing it each; a
     * frozen layer's row-wise operand is not enough for a trainable one after it, which quantizes x itself. Three
     * steps, so delayed scaling runs from its history.
     */
    @ParameterizedTest
    @EnumSource(Scaling.class)
    void layersReadingOneInputQuantizeItOnce(Scaling scaling) {
        SplittableRandom rng = new SplittableRandom(17);
        double[] x = gaussian(rng, N * IN, 1), dy = gaussian(rng, N * OUT, 1);
        double[][] ws = {gaussian(rng, OUT * IN, 0.05), gaussian(rng, OUT * IN, 0.05), gaussian(rng, OUT * IN, 0.05)};
        var settings = new Fp8Linear.Settings(Rotation.ALL, 64, true, scaling, scaling == Scaling.DELAYED ? 4 : 0);
        for (boolean firstFrozen : new boolean[] {false, true}) {
            List<double[]> want = new ArrayList<>(), got = new ArrayList<>();
            for (boolean share : new boolean[] {false, true}) {
                SharedInput shared = new SharedInput();
                Parameter[] ps = new Parameter[3];
                Fp8Linear[] layers = new Fp8Linear[3];
                for (int i = 0; i < 3; i++) {
                    ps[i] = weight(ws[i], DType.F32);
                    if (i == 0 && firstFrozen) ps[i].freeze();
                    String name = "layers.0.attention.w" + "qkv".charAt(i);
                    layers[i] = share ? new Fp8Linear(name, ps[i], null, settings, shared) : new Fp8Linear(name, ps[i], null, settings);
                }
                List<double[]> results = share ? got : want;
                for (int step = 0; step < 3; step++) {
                    try (Tensor xt = CPU.fromDoubles(x, DType.F32, N, IN); Tensor dyt = CPU.fromDoubles(dy, DType.F32, N, OUT)) {
                        Tensor[] y = new Tensor[3];
                        for (int i = 0; i < 3; i++) y[i] = layers[i].forward(xt);
                        try (Tensor dx = layers[0].backward(dyt)) { // as Attention.backward: wq, then wk and wv accumulate
                            layers[1].backwardAccumulate(dyt, dx);
                            layers[2].backwardAccumulate(dyt, dx);
                            results.add(CPU.toDoubles(dx));
                        }
                        for (int i = 0; i < 3; i++) {
                            results.add(CPU.toDoubles(y[i]));
                            y[i].close();
                            layers[i].endStep();
                        }
                    }
                }
                for (int i = firstFrozen ? 1 : 0; i < 3; i++) results.add(CPU.toDoubles(ps[i].grad()));
                if (share)
                    for (int i = 0; i < 3; i++) {
                        boolean quantizes = i == 0 || (firstFrozen && i == 1);
                        double recorded = Arrays.stream(CPU.toDoubles(layers[i].stepState().get("amax_history.x_rows"))).map(Math::abs).sum();
                        assertEquals(quantizes, recorded > 0, "layer " + i + (firstFrozen ? " after a frozen first" : "") + " quantized x: " + recorded);
                    }
            }
            assertEquals(want.size(), got.size());
            for (int i = 0; i < want.size(); i++)
                assertArrayEquals(want.get(i), got.get(i), scaling + (firstFrozen ? ", first frozen" : "") + ": result " + i + " differs");
        }
    }

    /**
     * Tokens whose sizes span 2^0 .. 2^-19, as after a norm-free residual stream or with padding-like rows: one scale
     * per tensor pushes the small tokens below E4M3's subnormals (their outputs are mostly lost), one scale per row
     * (per token of x and dy, per channel of the weight) keeps every token at FP8's own rounding.
     */
    @Test
    void rowwiseScalingKeepsSmallTokens() {
        SplittableRandom rng = new SplittableRandom(13);
        double[] w = gaussian(rng, OUT * IN, 0.05), x = gaussian(rng, N * IN, 1), dy = gaussian(rng, N * OUT, 1);
        for (int i = 0; i < x.length; i++) x[i] = Math.scalb(x[i], -((i / IN) % 20));
        for (int i = 0; i < dy.length; i++) dy[i] = Math.scalb(dy[i], -2 * ((i / OUT) % 20)); // past E5M2's 2^32 range
        Pass want = dense(w, x, dy);
        double[][] worst = new double[2][];
        for (Scaling scaling : new Scaling[] {Scaling.CURRENT, Scaling.ROWWISE}) {
            Parameter p = weight(w, DType.F64);
            Pass got = run(new Fp8Linear("layers.0.attention.wo", p, null, new Fp8Linear.Settings(Rotation.ALL, 64, true, scaling, 0)), p, x, dy, DType.F64);
            double wy = worstRowError(got.y(), want.y(), OUT), wdx = worstRowError(got.dx(), want.dx(), IN);
            System.out.printf(Locale.ROOT, "fp8 %-7s scaling, tokens from 2^0 to 2^-19 (dY 2^-38): worst token's relative error  Y %.4f  dX %.4f%n",
                    scaling.configName(), wy, wdx);
            worst[scaling == Scaling.ROWWISE ? 1 : 0] = new double[] {wy, wdx};
        }
        assertTrue(worst[1][0] < 0.06 && worst[1][1] < 0.1, "rowwise scaling holds every token to FP8 rounding: " + Arrays.toString(worst[1]));
        assertTrue(worst[0][0] > 0.5 && worst[0][1] > 0.5, "per-tensor scaling loses the small tokens: " + Arrays.toString(worst[0]));
    }

    /** The largest relative error of one row (a token) of a (rows, width) result. */
    static double worstRowError(double[] got, double[] want, int width) {
        double worst = 0;
        for (int r = 0; r < got.length / width; r++)
            worst = Math.max(worst, relativeError(Arrays.copyOfRange(got, r * width, r * width + width),
                    Arrays.copyOfRange(want, r * width, r * width + width)));
        return worst;
    }

    @ParameterizedTest
    @EnumSource(Rotation.class)
    void rotationsWithoutFp8LeaveTheLayerExact(Rotation rotation) {
        SplittableRandom rng = new SplittableRandom(5);
        double[] w = gaussian(rng, OUT * IN, 0.05), x = gaussian(rng, N * IN, 1), dy = gaussian(rng, N * OUT, 1);
        Pass want = dense(w, x, dy), got = fp8(rotation, false, w, x, dy, DType.F64);
        for (var e : new double[][][] {{got.y(), want.y()}, {got.dx(), want.dx()}, {got.dw(), want.dw()}}) {
            double err = relativeError(e[0], e[1]);
            assertTrue(err < 1e-10, rotation + ": rotated layer differs from the dense one by " + err);
        }
    }

    /** Full-size blocks (256 over in-features and tokens, 128 over out-features) leave the layer exact as well. */
    @Test
    void fullSizeBlocksLeaveTheLayerExact() {
        SplittableRandom rng = new SplittableRandom(6);
        double[] w = gaussian(rng, OUT * IN, 0.05), x = gaussian(rng, N * IN, 1), dy = gaussian(rng, N * OUT, 1);
        Parameter p = weight(w, DType.F64);
        var settings = new Fp8Linear.Settings(Rotation.ALL, Fp8Linear.FULL_BLOCK, false);
        Pass want = dense(w, x, dy), got = run(new Fp8Linear("layers.0.attention.wq", p, null, settings), p, x, dy, DType.F64);
        for (var e : new double[][][] {{got.y(), want.y()}, {got.dx(), want.dx()}, {got.dw(), want.dw()}})
            assertTrue(relativeError(e[0], e[1]) < 1e-10, "full-size rotations differ from the dense layer by " + relativeError(e[0], e[1]));
        assertEquals(4096, settings.block(4096));
        assertEquals(2048, settings.block(14336), "14336 = 7 x 2048: Walsh–Hadamard blocks come in powers of two");
        assertEquals(128, new Fp8Linear.Settings(Rotation.ALL, 128, true).block(14336));
    }

    /**
     * A few input channels 100x larger than the rest. FP8 is a floating-point format: with per-tensor scaling every
     * element keeps its relative precision (3 or 2 mantissa bits) unless it falls below the subnormal range, which
     * 100x outliers do not cause. The rotation then only reshuffles per-element errors of the same size, so the
     * errors with and without it agree to a few percent (printed); it is integer formats, or outliers beyond
     * E4M3's 2^17 range, where it pays. The test holds every mode to FP8's rounding and the modes to each other.
     */
    @Test
    void outlierChannelsErrorsPerRotation() {
        SplittableRandom rng = new SplittableRandom(11);
        double[] w = gaussian(rng, OUT * IN, 0.05), x = gaussian(rng, N * IN, 1), dy = gaussian(rng, N * OUT, 1);
        for (int c : new int[] {3, 77, 130, 201}) for (int r = 0; r < N; r++) x[r * IN + c] *= 100;
        Pass want = dense(w, x, dy);
        double[][] errs = new double[Rotation.values().length][];
        for (Rotation rot : Rotation.values()) {
            Pass got = fp8(rot, true, w, x, dy, DType.F64);
            double ey = relativeError(got.y(), want.y()), edx = relativeError(got.dx(), want.dx()), edw = relativeError(got.dw(), want.dw());
            System.out.printf(Locale.ROOT, "fp8 with 100x outlier channels, rotation %-9s  Y %.4f  dX %.4f  dW %.4f%n", rot.configName(), ey, edx, edw);
            errs[rot.ordinal()] = new double[] {ey, edx, edw};
            // E4M3 rounds to 2^-4 relative at worst (about 3.6% rms), E5M2 to 2^-3 (about 7%).
            assertTrue(ey < 0.05 && edx < 0.08 && edw < 0.08, rot + ": errors beyond FP8 rounding: " + ey + ", " + edx + ", " + edw);
        }
        for (double[] e : errs)
            for (int i = 0; i < 3; i++)
                assertTrue(Math.abs(e[i] / errs[0][i] - 1) < 0.1, "rotated and unrotated FP8 errors differ by more than 10%: " + e[i] + " vs " + errs[0][i]);
    }

    /**
     * The same outliers on an integer grid (symmetric per-tensor INT8, the format HALO's published results use),
     * Y = X·Wᵀ only: a uniform step set by the outliers' amax wipes out the ordinary channels, and rotating both
     * operands along in-features (blocks of 64, as above) shrinks the amax and with it the error. This is what the
     * rotations are for; the FP8 test above shows why FP8 does not need them at 100x.
     */
    @Test
    void onAnIntegerGridRotationLowersTheOutlierError() {
        SplittableRandom rng = new SplittableRandom(11);
        double[] w = gaussian(rng, OUT * IN, 0.05), x = gaussian(rng, N * IN, 1);
        for (int c : new int[] {3, 77, 130, 201}) for (int r = 0; r < N; r++) x[r * IN + c] *= 100;
        double[] want = matmulNT(x, w);
        double plain = relativeError(matmulNT(int8(x), int8(w)), want);
        double[] xr = x.clone(), wr = w.clone();
        dev.strata.runtime.cpu.Hadamard.rotate(xr, 64);
        dev.strata.runtime.cpu.Hadamard.rotate(wr, 64);
        double rotated = relativeError(matmulNT(int8(xr), int8(wr)), want);
        System.out.printf(Locale.ROOT, "int8 with 100x outlier channels: Y error %.4f unrotated, %.4f rotated (%.1fx lower)%n", plain, rotated, plain / rotated);
        assertTrue(plain / rotated > 2, "rotation should lower INT8's outlier error clearly: " + plain + " -> " + rotated);
    }

    /** v quantized to 255 levels per tensor (scale amax / 127, round half to even) and back. */
    static double[] int8(double[] v) {
        double amax = Arrays.stream(v).map(Math::abs).max().orElse(0), scale = amax / 127;
        return Arrays.stream(v).map(e -> Math.rint(e / scale) * scale).toArray();
    }

    /** (N,IN)·(OUT,IN)ᵀ in F64. */
    static double[] matmulNT(double[] x, double[] w) {
        double[] y = new double[N * OUT];
        for (int r = 0; r < N; r++)
            for (int o = 0; o < OUT; o++) {
                double acc = 0;
                for (int i = 0; i < IN; i++) acc += x[r * IN + i] * w[o * IN + i];
                y[r * OUT + o] = acc;
            }
        return y;
    }
}
