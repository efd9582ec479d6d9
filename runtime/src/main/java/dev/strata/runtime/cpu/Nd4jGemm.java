package dev.strata.runtime.cpu;

import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.nd4j.linalg.api.buffer.DataBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Row-major GEMM on Java arrays through ND4J. Operands are copied into native memory with one memcpy each and
 * wrapped as ND4J buffers (ND4J's own array constructors copy element by element, which cost more than the GEMM).
 * ND4J's gemm is column-major, so C = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ on the same memory. The native
 * buffers are kept per thread and grown as needed: fresh ones would page-fault on every call.
 */
final class Nd4jGemm {
    private Nd4jGemm() {}

    /** Three reusable native operand buffers of one thread. */
    private static final class Scratch {
        final Pointer[] f32 = new Pointer[3], f64 = new Pointer[3];

        Pointer get(boolean isF32, int slot, long elements) {
            Pointer[] set = isF32 ? f32 : f64;
            if (set[slot] == null || set[slot].capacity() < elements) {
                if (set[slot] != null) set[slot].close();
                long capacity = Math.max(elements, set[slot] == null ? 0 : set[slot].capacity() * 3 / 2);
                set[slot] = isF32 ? new FloatPointer(capacity) : new DoublePointer(capacity);
            }
            return set[slot];
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    static void gemm(CpuBuffer a, boolean transA, CpuBuffer b, boolean transB, CpuBuffer c, int m, int n, int k,
                     double alpha, double beta) {
        boolean f32 = c instanceof CpuBuffer.F32;
        DataType type = f32 ? DataType.FLOAT : DataType.DOUBLE;
        Scratch scratch = SCRATCH.get();
        Pointer pa = fill(scratch.get(f32, 0, (long) m * k), a, m * k), pb = fill(scratch.get(f32, 1, (long) k * n), b, k * n);
        Pointer pc = scratch.get(f32, 2, (long) m * n);
        if (beta != 0) fill(pc, c, m * n);
        // Column-major views: A (m×k row-major) is Aᵀ, etc.
        try (INDArray fa = wrap(pa, type, transA ? m : k, transA ? k : m);
             INDArray fb = wrap(pb, type, transB ? k : n, transB ? n : k);
             INDArray fc = wrap(pc, type, n, m)) {
            Nd4j.gemm(fb, fa, fc, transB, transA, alpha, beta);
        }
        if (f32) ((FloatPointer) pc).get(((CpuBuffer.F32) c).a(), 0, m * n);
        else ((DoublePointer) pc).get(((CpuBuffer.F64) c).a(), 0, m * n);
    }

    /** Copies buf into p, widening f32 to f64 where p is f64 (FP8 operands, held as f32, in an F64 product). */
    private static Pointer fill(Pointer p, CpuBuffer buf, int n) {
        switch (buf) {
            case CpuBuffer.F32 f when p instanceof DoublePointer dp -> { for (int i = 0; i < n; i++) dp.put(i, f.a()[i]); }
            case CpuBuffer.F32 f -> ((FloatPointer) p).put(f.a(), 0, n);
            case CpuBuffer.F64 d -> ((DoublePointer) p).put(d.a(), 0, n);
            case CpuBuffer.I32 i -> throw new IllegalArgumentException("matmul of an integer tensor");
        }
        return p;
    }

    /** A column-major rows×cols ND4J array over native memory, no copy. */
    private static INDArray wrap(Pointer p, DataType type, int rows, int cols) {
        DataBuffer db = Nd4j.createBuffer(p, (long) rows * cols, type);
        return Nd4j.create(db, new long[] {rows, cols}, new long[] {1, rows}, 0, 'f', type);
    }
}
