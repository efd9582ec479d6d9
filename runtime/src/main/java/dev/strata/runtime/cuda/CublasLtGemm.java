package dev.strata.runtime.cuda;

import static org.bytedeco.cuda.global.cublas.*;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.bytedeco.cuda.cublas.cublasLtContext;
import org.bytedeco.cuda.cublas.cublasLtMatmulDescOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulHeuristicResult_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulPreferenceOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatrixLayoutOpaque_t;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.PointerPointer;

/**
 * Row-major GEMMs through cuBLASLt. cuBLASLt is column-major, so C = op(A)·op(B) (m×n) runs as Cᵀ = op(B)ᵀ·op(A)ᵀ
 * on the same memory. Descriptors and the heuristic's algorithm are made once per shape and types and kept. FP8
 * GEMMs are C = A·Bᵀ with both operands K-contiguous (cuBLASLt's required "TN" layout) and per-tensor scales read
 * from device pointers.
 */
final class CublasLtGemm implements AutoCloseable {
    private static final long WORKSPACE_BYTES = 32L << 20;

    private record Key(int m, int n, int k, boolean transA, boolean transB, int aType, int bType, int outputType, boolean fastAccum,
                       boolean rowScales, boolean bias) {}

    private record Plan(cublasLtMatmulDescOpaque_t desc, cublasLtMatrixLayoutOpaque_t a, cublasLtMatrixLayoutOpaque_t b,
                        cublasLtMatrixLayoutOpaque_t c, cublasLtMatmulHeuristicResult_t heuristic) {}

    private final cublasLtContext handle = new cublasLtContext();
    private final CUstream_st stream;
    private final DeviceAllocator allocator;
    private final long workspace;
    private final Map<Key, Plan> plans = new HashMap<>();
    private final Set<Key> refused = new HashSet<>();
    private final FloatPointer alpha = new FloatPointer(1), beta = new FloatPointer(1);

    CublasLtGemm(CUstream_st stream, DeviceAllocator allocator) {
        this.stream = stream;
        this.allocator = allocator;
        check(cublasLtCreate(handle), "cublasLtCreate");
        this.workspace = allocator.allocate(WORKSPACE_BYTES);
    }

    /**
     * c = alpha·op(a)·op(b) + beta·c (+ bias) with row-major a (m×k, or k×m when transA), b (k×n, or n×k), c (m×n); a
     * and b of {@code operandType}, c of {@code outputType} (CUDA_R_32F or CUDA_R_16BF), accumulation in f32; bias (n)
     * of outputType added to every row in the epilogue, or 0 for none.
     */
    void matmul(long a, boolean transA, long b, boolean transB, long c, int m, int n, int k, float alphaValue,
                float betaValue, int operandType, int outputType, long bias) {
        Plan p = plans.computeIfAbsent(new Key(m, n, k, transA, transB, operandType, operandType, outputType, false, false, bias != 0), this::plan);
        if (bias != 0) setPointer(p.desc(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
        run(p, a, b, c, alphaValue, betaValue, m, n, k);
    }

    /**
     * c (m×n) = aScale·bScale · a (m×k)·b (n×k)ᵀ + beta·c for FP8 a and b (E4M3 or E5M2 codes); the scales are
     * device pointers to one f32 each, or with rowScales to one per row of each operand (cuBLASLt's "outer vector"
     * scaling, which {@link #scalesRows} must have accepted). fastAccum trades the periodic promotion of partial sums
     * for speed.
     */
    void matmulFp8(long a, int aType, long aScale, long b, int bType, long bScale, long c, int outputType, int m, int n, int k,
                   float betaValue, boolean fastAccum, boolean rowScales) {
        Plan p = plans.computeIfAbsent(new Key(m, n, k, false, true, aType, bType, outputType, fastAccum, rowScales, false), this::plan);
        // cuBLASLt's "A" is our b (see the class comment).
        setPointer(p.desc(), CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, bScale);
        setPointer(p.desc(), CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, aScale);
        run(p, a, b, c, 1f, betaValue, m, n, k);
    }

    /** Whether cuBLASLt has an algorithm that applies per-row scales itself to this FP8 GEMM (asked once per shape). */
    boolean scalesRows(int aType, int bType, int outputType, int m, int n, int k, boolean fastAccum) {
        Key key = new Key(m, n, k, false, true, aType, bType, outputType, fastAccum, true, false);
        if (plans.containsKey(key)) return true;
        if (refused.contains(key)) return false;
        try {
            plans.put(key, plan(key));
            return true;
        } catch (CudaException e) {
            refused.add(key);
            return false;
        }
    }

    private void run(Plan p, long a, long b, long c, float alphaValue, float betaValue, int m, int n, int k) {
        alpha.put(alphaValue);
        beta.put(betaValue);
        // cuBLASLt's "A" is our B and its "B" is our A (see the class comment).
        check(cublasLtMatmul(handle, p.desc(), alpha, Cuda.at(b), p.a(), Cuda.at(a), p.b(), beta, Cuda.at(c), p.c(),
                Cuda.at(c), p.c(), p.heuristic().algo(), Cuda.at(workspace), WORKSPACE_BYTES, stream),
                "cublasLtMatmul " + m + "x" + n + "x" + k);
    }

    private Plan plan(Key key) {
        PointerPointer<?> out = new PointerPointer<>(1);
        check(cublasLtMatmulDescCreate(out, CUBLAS_COMPUTE_32F, org.bytedeco.cuda.global.cudart.CUDA_R_32F), "cublasLtMatmulDescCreate");
        var desc = new cublasLtMatmulDescOpaque_t(out.get(0));
        setOp(desc, CUBLASLT_MATMUL_DESC_TRANSA, key.transB());
        setOp(desc, CUBLASLT_MATMUL_DESC_TRANSB, key.transA());
        if (key.fastAccum())
            try (org.bytedeco.javacpp.BytePointer on = new org.bytedeco.javacpp.BytePointer(1).put((byte) 1)) {
                check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, on, 1), "cublasLtMatmulDescSetAttribute(FAST_ACCUM)");
            }
        if (key.rowScales())
            for (int attribute : new int[] {CUBLASLT_MATMUL_DESC_A_SCALE_MODE, CUBLASLT_MATMUL_DESC_B_SCALE_MODE})
                try (IntPointer mode = new IntPointer(1).put(CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F)) {
                    check(cublasLtMatmulDescSetAttribute(desc, attribute, mode, 4), "cublasLtMatmulDescSetAttribute(SCALE_MODE)");
                }
        if (key.bias()) // cuBLASLt's rows are our columns, so its per-row bias is our per-column one
            try (IntPointer epilogue = new IntPointer(1).put(CUBLASLT_EPILOGUE_BIAS)) {
                check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue, 4), "cublasLtMatmulDescSetAttribute(EPILOGUE)");
            }
        int m = key.m(), n = key.n(), k = key.k();
        // Column-major views: our B is (n×k) when not transposed, our A is (k×m); C is (n×m).
        var la = layout(key.bType(), key.transB() ? k : n, key.transB() ? n : k);
        var lb = layout(key.aType(), key.transA() ? m : k, key.transA() ? k : m);
        var lc = layout(key.outputType(), n, m);
        check(cublasLtMatmulPreferenceCreate(out), "cublasLtMatmulPreferenceCreate");
        var pref = new cublasLtMatmulPreferenceOpaque_t(out.get(0));
        try (LongPointer ws = new LongPointer(1).put(WORKSPACE_BYTES)) {
            check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, ws, 8), "cublasLtMatmulPreferenceSetAttribute");
        }
        var result = new cublasLtMatmulHeuristicResult_t();
        int[] found = new int[1];
        check(cublasLtMatmulAlgoGetHeuristic(handle, desc, la, lb, lc, lc, pref, 1, result, found), "cublasLtMatmulAlgoGetHeuristic");
        cublasLtMatmulPreferenceDestroy(pref);
        if (found[0] == 0) throw new CudaException("cuBLASLt has no algorithm for a " + m + "x" + n + "x" + k + " GEMM");
        return new Plan(desc, la, lb, lc, result);
    }

    private static void setOp(cublasLtMatmulDescOpaque_t desc, int attribute, boolean transpose) {
        try (IntPointer op = new IntPointer(1).put(transpose ? CUBLAS_OP_T : CUBLAS_OP_N)) {
            check(cublasLtMatmulDescSetAttribute(desc, attribute, op, 4), "cublasLtMatmulDescSetAttribute");
        }
    }

    private static void setPointer(cublasLtMatmulDescOpaque_t desc, int attribute, long address) {
        try (LongPointer value = new LongPointer(1).put(address)) {
            check(cublasLtMatmulDescSetAttribute(desc, attribute, value, 8), "cublasLtMatmulDescSetAttribute(pointer)");
        }
    }

    private static cublasLtMatrixLayoutOpaque_t layout(int dataType, int rows, int cols) {
        PointerPointer<?> out = new PointerPointer<>(1);
        check(cublasLtMatrixLayoutCreate(out, dataType, rows, cols, rows), "cublasLtMatrixLayoutCreate");
        return new cublasLtMatrixLayoutOpaque_t(out.get(0));
    }

    static void check(int status, String call) {
        if (status != 0) throw new CudaException(call + " failed with cuBLAS status " + status);
    }

    @Override public void close() {
        for (Plan p : plans.values()) {
            cublasLtMatmulDescDestroy(p.desc());
            cublasLtMatrixLayoutDestroy(p.a());
            cublasLtMatrixLayoutDestroy(p.b());
            cublasLtMatrixLayoutDestroy(p.c());
        }
        plans.clear();
        allocator.free(workspace, WORKSPACE_BYTES);
        cublasLtDestroy(handle);
    }
}
