package dev.strata.quant;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.runtime.nn.LoraLinear;
import dev.strata.runtime.nn.Parameter;
import java.util.Locale;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The CUDA Fp8Linear (bf16 activations, f32 weights, cuBLASLt FP8 GEMMs) against the CPU emulation on the same
 * bf16-rounded inputs. Quantization agrees code for code (CudaBackendTest), so what differs is accumulation: the
 * CPU sums in f64, Hopper's FP8 tensor cores keep partial sums at reduced precision between cuBLASLt's promotions
 * to f32 (and with fast accumulation, used for the forward GEMM, never promote). Measured: y 1.0-1.2% (fast
 * accumulation, K = 256), dW 0.9% (K = 512), dx 0.17% (K = 384); y and dx are also rounded to bf16. Bound: 2%,
 * half the error FP8 itself makes against F64 (~4% for E4M3).
 */
@Tag("gpu")
class CudaFp8LinearTest {
    static final String UNAVAILABLE = CudaBackend.unavailableReason();
    static final int N = 512, IN = 256, OUT = 384;

    @ParameterizedTest
    @CsvSource({"NONE, CURRENT, 128", "FWD, CURRENT, 128", "FWD_DGRAD, CURRENT, 128", "ALL, CURRENT, 128", "NONE, ROWWISE, 128",
            "ALL, ROWWISE, 128", "ALL, CURRENT, 0"})
    void cudaMatchesTheCpuEmulation(Rotation rotation, Scaling scaling, int block) {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CUDA Fp8Linear test skipped: " + UNAVAILABLE);
        SplittableRandom rng = new SplittableRandom(3);
        double[] w = bf16(rng, OUT * IN, 0.05), x = bf16(rng, N * IN, 1), dy = bf16(rng, N * OUT, 1e-3);
        for (int r = 0; r < N; r++) x[r * IN + 17] *= 30;
        var settings = new Fp8Linear.Settings(rotation, block, true, scaling, 0); // block 0: full (256, 128, 512)
        double[][] cpu = pass(CpuBackend.INSTANCE, DType.F32, settings, w, x, dy);
        double[][] gpu;
        try (CudaBackend cuda = CudaBackend.open(0)) {
            gpu = pass(cuda, DType.BF16, settings, w, x, dy);
        }
        String[] names = {"y", "dx", "dW"};
        for (int i = 0; i < 3; i++) {
            double err = Fp8LinearTest.relativeError(gpu[i], cpu[i]);
            System.out.printf(Locale.ROOT, "cuda fp8 linear, rotation %-9s %-7s scaling, block %-4s %-2s relative to the cpu emulation %.2e%n",
                    rotation.configName(), scaling.configName(), block == 0 ? "full" : block, names[i], err);
            assertTrue(err < 2e-2, rotation + " " + scaling + " " + names[i] + ": " + err);
        }
    }

    /**
     * A LoRA adapter (rank 16, bf16 GEMMs on the GPU) on a frozen Fp8Linear, which then quantizes x and dy for its
     * forward and dgrad GEMMs only: y, dx and the adapter's gradients against the CPU emulation, same bound.
     */
    @ParameterizedTest
    @CsvSource({"NONE, CURRENT", "ALL, CURRENT", "ALL, ROWWISE"})
    void loraOnAFrozenFp8BaseMatchesTheCpuEmulation(Rotation rotation, Scaling scaling) {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CUDA LoRA-on-FP8 test skipped: " + UNAVAILABLE);
        SplittableRandom rng = new SplittableRandom(4);
        double[] w = bf16(rng, OUT * IN, 0.05), x = bf16(rng, N * IN, 1), dy = bf16(rng, N * OUT, 1e-3);
        double[] a = bf16(rng, 16 * IN, 0.06), bUp = bf16(rng, OUT * 16, 0.05);
        var settings = new Fp8Linear.Settings(rotation, 128, true, scaling, 0);
        double[][] cpu = loraPass(CpuBackend.INSTANCE, DType.F32, settings, w, a, bUp, x, dy);
        double[][] gpu;
        try (CudaBackend cuda = CudaBackend.open(0)) {
            gpu = loraPass(cuda, DType.BF16, settings, w, a, bUp, x, dy);
        }
        String[] names = {"y", "dx", "dA", "dB"};
        for (int i = 0; i < names.length; i++) {
            double err = Fp8LinearTest.relativeError(gpu[i], cpu[i]);
            System.out.printf(Locale.ROOT, "cuda lora on fp8, rotation %-9s %-7s scaling, %-2s relative to the cpu emulation %.2e%n",
                    rotation.configName(), scaling.configName(), names[i], err);
            assertTrue(err < 2e-2, rotation + " " + scaling + " " + names[i] + ": " + err);
        }
    }

    static double[][] loraPass(Backend b, DType activations, Fp8Linear.Settings settings, double[] w, double[] a, double[] bUp,
                               double[] x, double[] dy) {
        Parameter p = new Parameter("w", Parameter.Kind.LINEAR_WEIGHT, b.fromDoubles(w, DType.F32, OUT, IN));
        p.freeze();
        Parameter pa = new Parameter("w.lora_a", Parameter.Kind.LORA_A, b.fromDoubles(a, DType.F32, 16, IN));
        Parameter pb = new Parameter("w.lora_b", Parameter.Kind.LORA_B, b.fromDoubles(bUp, DType.F32, OUT, 16));
        var layer = new LoraLinear(new Fp8Linear("test", p, null, settings), pa, pb, 2.0);
        try (Tensor xt = b.fromDoubles(x, activations, N, IN); Tensor dyt = b.fromDoubles(dy, activations, N, OUT);
             Tensor y = layer.forward(xt); Tensor dx = layer.backward(dyt)) {
            return new double[][] {b.toDoubles(y), b.toDoubles(dx), b.toDoubles(pa.grad()), b.toDoubles(pb.grad())};
        }
    }

    /** y, dx, dW of one forward and backward through an Fp8Linear on backend b. */
    static double[][] pass(Backend b, DType activations, Fp8Linear.Settings settings, double[] w, double[] x, double[] dy) {
        Parameter p = new Parameter("w", Parameter.Kind.LINEAR_WEIGHT, b.fromDoubles(w, DType.F32, OUT, IN));
        var layer = new Fp8Linear("test", p, null, settings);
        try (Tensor xt = b.fromDoubles(x, activations, N, IN); Tensor dyt = b.fromDoubles(dy, activations, N, OUT);
             Tensor y = layer.forward(xt); Tensor dx = layer.backward(dyt)) {
            return new double[][] {b.toDoubles(y), b.toDoubles(dx), b.toDoubles(p.grad())};
        }
    }

    static double[] bf16(SplittableRandom rng, int n, double sd) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = Float.intBitsToFloat(HostTensor.toBf16((float) (sd * rng.nextGaussian())) << 16);
        return v;
    }
}
