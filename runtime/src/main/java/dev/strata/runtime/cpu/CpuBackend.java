package dev.strata.runtime.cpu;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Device;
import dev.strata.runtime.Fp8;
import dev.strata.runtime.Tensor;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntConsumer;
import java.util.stream.IntStream;

/**
 * The reference backend: F32 and F64 tensors in Java arrays, GEMMs through ND4J, every other op a loop over rows.
 * Reductions always run in double, so F32 results differ from F64 only by the rounding of stored values.
 */
public final class CpuBackend implements Backend {

    public static final CpuBackend INSTANCE = new CpuBackend();

    private CpuBackend() {}

    @Override public Device device() { return Device.CPU; }

    // ---- memory -------------------------------------------------------------------------------------------------

    @Override public Tensor zeros(DType dtype, int... shape) {
        int n = checkedNumel(shape);
        CpuBuffer buf = switch (dtype) {
            case F64 -> new CpuBuffer.F64(new double[n]);
            case F32, FP8_E4M3, FP8_E5M2 -> new CpuBuffer.F32(new float[n]); // FP8: the values of the codes
            case I32 -> new CpuBuffer.I32(new int[n]);
            default -> throw new UnsupportedOperationException(
                    "the CPU backend holds f64, f32, fp8 and i32 tensors, not " + dtype.configName());
        };
        return new Tensor(this, buf, dtype, shape, true);
    }

    /** Java arrays start zeroed anyway. */
    @Override public Tensor empty(DType dtype, int... shape) { return zeros(dtype, shape); }

    @Override public Tensor fromDoubles(double[] data, DType dtype, int... shape) {
        requireLength(data.length, shape);
        Tensor t = zeros(dtype, shape);
        CpuBuffer b = buf(t);
        for (int i = 0; i < data.length; i++) b.set(i, data[i]);
        return t;
    }

    @Override public Tensor fromInts(int[] data, int... shape) {
        requireLength(data.length, shape);
        return new Tensor(this, new CpuBuffer.I32(data.clone()), DType.I32, shape, true);
    }

    @Override public double[] toDoubles(Tensor t) {
        CpuBuffer b = buf(t);
        int n = (int) t.numel();
        double[] out = new double[n];
        for (int i = 0; i < n; i++) out[i] = b.get(i);
        return out;
    }

    @Override public Tensor fromBytes(java.nio.ByteBuffer data, DType dtype, int... shape) {
        Tensor t = zeros(dtype, shape);
        java.nio.ByteBuffer b = data.slice().order(java.nio.ByteOrder.LITTLE_ENDIAN);
        requireLength((int) (b.remaining() / Math.max(1, dtype.byteSize())), shape);
        switch (buf(t)) {
            case CpuBuffer.F64 d when dtype == DType.F64 -> b.asDoubleBuffer().get(d.a());
            case CpuBuffer.F32 f when dtype == DType.F32 -> b.asFloatBuffer().get(f.a());
            case CpuBuffer.I32 i -> b.asIntBuffer().get(i.a());
            default -> {
                t.close();
                return Backend.super.fromBytes(data, dtype, shape); // FP8 codes held as their values
            }
        }
        return t;
    }

    @Override public java.nio.ByteBuffer toBytes(Tensor t) {
        int n = (int) t.numel();
        java.nio.ByteBuffer out = java.nio.ByteBuffer.allocate(n * t.dtype().byteSize()).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        switch (buf(t)) {
            case CpuBuffer.F64 d when t.dtype() == DType.F64 -> out.asDoubleBuffer().put(d.a(), 0, n);
            case CpuBuffer.F32 f when t.dtype() == DType.F32 -> out.asFloatBuffer().put(f.a(), 0, n);
            case CpuBuffer.I32 i -> out.asIntBuffer().put(i.a(), 0, n);
            default -> { return Backend.super.toBytes(t); }
        }
        return out;
    }

    @Override public int[] toInts(Tensor t) {
        if (!(buf(t) instanceof CpuBuffer.I32 ints)) throw new IllegalArgumentException("expected an i32 tensor, got " + t);
        return Arrays.copyOf(ints.a(), (int) t.numel());
    }

    @Override public Tensor copy(Tensor src) {
        Tensor dst = zeros(src.dtype(), src.shape());
        copyInto(src, dst);
        return dst;
    }

    @Override public void copyInto(Tensor src, Tensor dst) {
        requireSameNumel(src, dst);
        CpuBuffer s = buf(src), d = buf(dst);
        int n = (int) src.numel();
        if (s instanceof CpuBuffer.F32 a && d instanceof CpuBuffer.F32 b) System.arraycopy(a.a(), 0, b.a(), 0, n);
        else if (s instanceof CpuBuffer.F64 a && d instanceof CpuBuffer.F64 b) System.arraycopy(a.a(), 0, b.a(), 0, n);
        else for (int i = 0; i < n; i++) d.set(i, s.get(i));
    }

    @Override public void copyElements(Tensor src, long srcAt, Tensor dst, long dstAt, long n) {
        Backend.requireRange(src, srcAt, dst, dstAt, n);
        Object from = switch (buf(src)) { case CpuBuffer.F64 b -> b.a(); case CpuBuffer.F32 b -> b.a(); case CpuBuffer.I32 b -> b.a(); };
        Object to = switch (buf(dst)) { case CpuBuffer.F64 b -> b.a(); case CpuBuffer.F32 b -> b.a(); case CpuBuffer.I32 b -> b.a(); };
        System.arraycopy(from, (int) srcAt, to, (int) dstAt, (int) n);
    }

    @Override public void zero(Tensor t) {
        switch (buf(t)) {
            case CpuBuffer.F64 b -> Arrays.fill(b.a(), 0, (int) t.numel(), 0.0);
            case CpuBuffer.F32 b -> Arrays.fill(b.a(), 0, (int) t.numel(), 0f);
            case CpuBuffer.I32 b -> Arrays.fill(b.a(), 0, (int) t.numel(), 0);
        }
    }

    @Override public void free(Tensor t) {
        // Heap arrays: the garbage collector frees them once no tensor refers to them.
    }

    // ---- dense algebra ------------------------------------------------------------------------------------------

    @Override public void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor c, double alpha, double beta) {
        require(a.rank() == 2 && b.rank() == 2 && c.rank() == 2, "matmul needs 2-D tensors: " + a + ", " + b + ", " + c);
        int m = transA ? a.size(1) : a.size(0), k = transA ? a.size(0) : a.size(1);
        int kb = transB ? b.size(1) : b.size(0), n = transB ? b.size(0) : b.size(1);
        require(k == kb && c.size(0) == m && c.size(1) == n,
                "matmul shapes do not agree: " + a + (transA ? "ᵀ" : "") + " @ " + b + (transB ? "ᵀ" : "") + " -> " + c);
        require(a.dtype() == b.dtype() && b.dtype() == c.dtype(), "matmul dtypes differ: " + a + ", " + b + ", " + c);
        if (k == 0) {
            scale(c, beta);
            return;
        }
        gemm(buf(a), transA, buf(b), transB, buf(c), m, n, k, alpha, beta);
    }

    /** Whether ND4J is on the classpath: GPU nodes ship without it, yet their tests compare with this backend. */
    private static final boolean ND4J = CpuBackend.class.getClassLoader().getResource("org/nd4j/linalg/factory/Nd4j.class") != null;

    /** c = alpha·op(a)·op(b) + beta·c through ND4J, or a plain loop in double where ND4J is absent. */
    private static void gemm(CpuBuffer a, boolean transA, CpuBuffer b, boolean transB, CpuBuffer c, int m, int n, int k,
                             double alpha, double beta) {
        if (ND4J) Nd4jGemm.gemm(a, transA, b, transB, c, m, n, k, alpha, beta);
        else plainGemm(a, transA, b, transB, c, m, n, k, alpha, beta);
    }

    static void plainGemm(CpuBuffer a, boolean transA, CpuBuffer b, boolean transB, CpuBuffer c, int m, int n, int k,
                          double alpha, double beta) {
        IntStream.range(0, m).parallel().forEach(i -> {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) s += a.get(transA ? p * m + i : i * k + p) * b.get(transB ? j * k + p : p * n + j);
                c.set(i * n + j, alpha * s + (beta == 0 ? 0 : beta * c.get(i * n + j)));
            }
        });
    }

    // ---- FP8 ----------------------------------------------------------------------------------------------------

    /** FP8 tensors live here as the floats their codes stand for, so the F32 GEMM multiplies them exactly. */
    @Override public void quantizeFp8(Tensor x, boolean transpose, int hadamardBlock, Fp8Operand out, Tensor amaxHistory, boolean fromHistory) {
        require(x.rank() == 2, "quantizeFp8 takes a 2-D tensor, got " + x);
        DType format = out.data().dtype();
        boolean quantize = format == DType.FP8_E4M3 || format == DType.FP8_E5M2;
        require(quantize || format == x.dtype(), "quantizeFp8 writes fp8_e4m3, fp8_e5m2 or the input's dtype, not " + format);
        int r = x.size(0), c = x.size(1), rows = transpose ? c : r, k = transpose ? r : c;
        CpuBuffer xb = buf(x);
        double[] v = new double[rows * k];
        for (int i = 0; i < r; i++)
            for (int j = 0; j < c; j++) v[transpose ? j * r + i : i * c + j] = xb.get(i * c + j);
        if (hadamardBlock > 1) {
            require(k % hadamardBlock == 0 && Integer.bitCount(hadamardBlock) == 1,
                    "hadamard block " + hadamardBlock + " must be a power of two dividing the contracted dimension " + k);
            Hadamard.rotate(v, hadamardBlock); // blocks never straddle rows: the block divides the row length k
        }
        require(out.data().size(0) == rows && out.data().size(1) == k, "quantizeFp8 output " + out.data() + " is not " + rows + "x" + k);
        CpuBuffer data = buf(out.data());
        if (!quantize) {
            for (int i = 0; i < v.length; i++) data.set(i, v[i]);
            for (int i = 0; i < out.scaleInv().numel(); i++) buf(out.scaleInv()).set(i, 1);
            return;
        }
        Fp8 fp8 = Fp8.of(format);
        boolean perRow = out.perRow();
        require(!(perRow && fromHistory), "per-row FP8 scales come from each row's own amax, not from an amax history");
        // Amaxes are f32, as on the GPU and in the histories: the scale from a tensor's own amax equals the one a
        // history that recorded it gives (a resumed run scales as the interrupted one did).
        float own = 0;
        for (double e : v) own = Math.max(own, (float) Math.abs(e));
        double amax = own;
        if (amaxHistory != null) {
            CpuBuffer h = buf(amaxHistory);
            if (fromHistory) {
                amax = 0;
                for (int i = 1; i < amaxHistory.numel(); i++) if (h.get(i) > amax && h.get(i) < Double.POSITIVE_INFINITY) amax = h.get(i); // a skipped step's NaN or inf does not count
            }
            h.set(0, Math.max(h.get(0), own));
        }
        CpuBuffer scaleInv = buf(out.scaleInv());
        for (int row = 0; row < rows; row++) {
            if (perRow) {
                amax = 0;
                for (int j = row * k; j < row * k + k; j++) amax = Math.max(amax, (float) Math.abs(v[j]));
            }
            float scale = amax > 0 && Double.isFinite(amax) ? (float) (fp8.max() / amax) : 1f;
            for (int j = row * k; j < row * k + k; j++) data.set(j, fp8.decode(fp8.encode((float) v[j] * scale)));
            scaleInv.set(perRow ? row : 0, 1 / scale);
        }
    }

    @Override public void rollAmaxHistories(List<Tensor> histories) {
        for (Tensor t : histories) {
            CpuBuffer h = buf(t);
            for (int i = (int) t.numel() - 1; i > 0; i--) h.set(i, h.get(i - 1));
            h.set(0, 0);
        }
    }

    @Override public void matmulFp8(Fp8Operand a, Fp8Operand b, Tensor c, double beta) {
        Tensor ad = a.data(), bd = b.data();
        int m = ad.size(0), k = ad.size(1), n = bd.size(0);
        require(bd.size(1) == k && c.size(0) == m && c.size(1) == n, "matmulFp8 shapes do not agree: " + ad + " @ " + bd + "ᵀ -> " + c);
        require(!(ad.dtype() == DType.FP8_E5M2 && bd.dtype() == DType.FP8_E5M2), "FP8 GEMMs take at most one e5m2 operand");
        if (!a.perRow() && !b.perRow()) {
            gemm(buf(ad), false, buf(bd), true, buf(c), m, n, k, buf(a.scaleInv()).get(0) * buf(b.scaleInv()).get(0), beta);
            return;
        }
        try (Tensor product = empty(c.dtype(), m, n)) { // (M,N) unscaled
            gemm(buf(ad), false, buf(bd), true, buf(product), m, n, k, 1, 0);
            CpuBuffer p = buf(product), cb = buf(c), sa = buf(a.scaleInv()), sb = buf(b.scaleInv());
            boolean rowsA = a.perRow(), rowsB = b.perRow();
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double scaled = sa.get(rowsA ? i : 0) * sb.get(rowsB ? j : 0) * p.get(i * n + j);
                    cb.set(i * n + j, scaled + (beta == 0 ? 0 : beta * cb.get(i * n + j)));
                }
        }
    }

    @Override public void addBias(Tensor x, Tensor bias) {
        int c = bias.size(0), n = (int) (x.numel() / c);
        require(x.size(-1) == c, "bias " + bias + " does not match " + x);
        CpuBuffer xb = buf(x), bb = buf(bias);
        parallelRows(n, c, r -> {
            for (int j = 0; j < c; j++) xb.set(r * c + j, xb.get(r * c + j) + bb.get(j));
        });
    }

    @Override public void sumRowsAccumulate(Tensor dy, Tensor dbias) {
        int c = dbias.size(0), n = (int) (dy.numel() / c);
        require(dy.size(-1) == c, "bias grad " + dbias + " does not match " + dy);
        CpuBuffer d = buf(dy), db = buf(dbias);
        double[] acc = new double[c];
        for (int r = 0; r < n; r++) for (int j = 0; j < c; j++) acc[j] += d.get(r * c + j);
        for (int j = 0; j < c; j++) db.set(j, db.get(j) + acc[j]);
    }

    @Override public Tensor add(Tensor a, Tensor b) {
        requireSameNumel(a, b);
        Tensor out = copy(a);
        addInPlace(out, b);
        return out;
    }

    @Override public void addInPlace(Tensor acc, Tensor x) {
        requireSameNumel(acc, x);
        CpuBuffer a = buf(acc), b = buf(x);
        int n = (int) acc.numel();
        if (a instanceof CpuBuffer.F32 fa && b instanceof CpuBuffer.F32 fb) {
            float[] p = fa.a(), q = fb.a();
            for (int i = 0; i < n; i++) p[i] += q[i];
        } else {
            for (int i = 0; i < n; i++) a.set(i, a.get(i) + b.get(i));
        }
    }

    @Override public void scale(Tensor t, double s) {
        CpuBuffer b = buf(t);
        int n = (int) t.numel();
        for (int i = 0; i < n; i++) b.set(i, b.get(i) * s);
    }

    @Override public void sumOfSquares(List<Tensor> tensors, Tensor out) {
        double total = 0;
        for (Tensor t : tensors) {
            CpuBuffer b = buf(t);
            int n = (int) t.numel();
            for (int i = 0; i < n; i++) {
                double v = b.get(i);
                total += v * v;
            }
        }
        buf(out).set(0, total);
    }

    // ---- embedding ----------------------------------------------------------------------------------------------

    /** The whole table: an id outside it is an error here, where a shard would give its row zeros. */
    @Override public Tensor embeddingForward(Tensor ids, Tensor table, DType out) {
        int[] idx = ints(ids);
        for (int i = 0; i < idx.length; i++)
            if (idx[i] < 0 || idx[i] >= table.size(0))
                throw new IndexOutOfBoundsException("token id " + idx[i] + " at position " + i + " is outside the vocabulary of " + table.size(0));
        return embeddingForward(ids, table, out, 0);
    }

    @Override public Tensor embeddingForward(Tensor ids, Tensor table, DType out, int firstRow) {
        require(out == table.dtype(), "the CPU backend computes in the parameters' dtype " + table.dtype() + ", not " + out);
        int n = (int) ids.numel(), rows = table.size(0), c = table.size(1);
        int[] idx = ints(ids);
        Tensor result = zeros(table.dtype(), n, c);
        CpuBuffer tb = buf(table), ob = buf(result);
        parallelRows(n, c, r -> {
            int row = idx[r] - firstRow;
            if (row >= 0 && row < rows) for (int j = 0; j < c; j++) ob.set(r * c + j, tb.get(row * c + j));
        });
        return result;
    }

    @Override public void embeddingBackward(Tensor ids, Tensor dout, Tensor dtable, int firstRow) {
        int n = (int) ids.numel(), rows = dtable.size(0), c = dtable.size(1);
        int[] idx = ints(ids);
        CpuBuffer d = buf(dout), g = buf(dtable);
        for (int r = 0; r < n; r++) {
            int row = idx[r] - firstRow;
            if (row >= 0 && row < rows) for (int j = 0; j < c; j++) g.set(row * c + j, g.get(row * c + j) + d.get(r * c + j));
        }
    }

    // ---- normalisation ------------------------------------------------------------------------------------------

    @Override public NormOutput layerNormForward(Tensor x, Tensor weight, Tensor bias, double eps) {
        int c = x.size(-1), n = (int) (x.numel() / c);
        Tensor out = zeros(x.dtype(), x.shape()), mean = zeros(statsType(x), n), rstd = zeros(statsType(x), n);
        CpuBuffer xb = buf(x), w = buf(weight), b = buf(bias), o = buf(out), mb = buf(mean), rb = buf(rstd);
        parallelRows(n, c, r -> {
            int base = r * c;
            double m = 0;
            for (int j = 0; j < c; j++) m += xb.get(base + j);
            m /= c;
            double var = 0;
            for (int j = 0; j < c; j++) {
                double dx = xb.get(base + j) - m;
                var += dx * dx;
            }
            double s = 1.0 / Math.sqrt(var / c + eps);
            for (int j = 0; j < c; j++) o.set(base + j, (xb.get(base + j) - m) * s * w.get(j) + b.get(j));
            mb.set(r, m);
            rb.set(r, s);
        });
        return new NormOutput(out, mean, rstd);
    }

    @Override public Tensor layerNormBackward(Tensor dout, Tensor x, Tensor weight, Tensor mean, Tensor rstd,
                                              Tensor dweight, Tensor dbias, Tensor residual) {
        int c = x.size(-1), n = (int) (x.numel() / c);
        Tensor dx = zeros(x.dtype(), x.shape());
        CpuBuffer d = buf(dout), xb = buf(x), w = buf(weight), mb = buf(mean), rb = buf(rstd), dxb = buf(dx);
        parallelRows(n, c, r -> {
            int base = r * c;
            double m = mb.get(r), s = rb.get(r), meanD = 0, meanDN = 0;
            for (int j = 0; j < c; j++) {
                double norm = (xb.get(base + j) - m) * s, dnorm = d.get(base + j) * w.get(j);
                meanD += dnorm;
                meanDN += dnorm * norm;
            }
            meanD /= c;
            meanDN /= c;
            for (int j = 0; j < c; j++) {
                double norm = (xb.get(base + j) - m) * s, dnorm = d.get(base + j) * w.get(j);
                dxb.set(base + j, s * (dnorm - meanD - norm * meanDN));
            }
        });
        double[] dw = new double[c], db = new double[c];
        for (int r = 0; r < n; r++) {
            double m = mb.get(r), s = rb.get(r);
            for (int j = 0; j < c; j++) {
                double g = d.get(r * c + j);
                dw[j] += g * (xb.get(r * c + j) - m) * s;
                db[j] += g;
            }
        }
        accumulate(dweight, dw);
        accumulate(dbias, db);
        // after dx is rounded to its dtype: CPU runs stay bit for bit what they were before the CUDA kernels fused the add
        if (residual != null) addInPlace(dx, residual);
        return dx;
    }

    @Override public NormOutput rmsNormForward(Tensor x, Tensor weight, double eps) {
        int c = x.size(-1), n = (int) (x.numel() / c);
        Tensor out = zeros(x.dtype(), x.shape()), rstd = zeros(statsType(x), n);
        CpuBuffer xb = buf(x), w = buf(weight), o = buf(out), rb = buf(rstd);
        parallelRows(n, c, r -> {
            int base = r * c;
            double ms = 0;
            for (int j = 0; j < c; j++) ms += xb.get(base + j) * xb.get(base + j);
            double s = 1.0 / Math.sqrt(ms / c + eps);
            for (int j = 0; j < c; j++) o.set(base + j, xb.get(base + j) * s * w.get(j));
            rb.set(r, s);
        });
        return new NormOutput(out, null, rstd);
    }

    @Override public Tensor rmsNormBackward(Tensor dout, Tensor x, Tensor weight, Tensor rstd, Tensor dweight, Tensor residual) {
        int c = x.size(-1), n = (int) (x.numel() / c);
        Tensor dx = zeros(x.dtype(), x.shape());
        CpuBuffer d = buf(dout), xb = buf(x), w = buf(weight), rb = buf(rstd), dxb = buf(dx);
        parallelRows(n, c, r -> {
            int base = r * c;
            double s = rb.get(r), meanDN = 0;
            for (int j = 0; j < c; j++) meanDN += d.get(base + j) * w.get(j) * xb.get(base + j) * s;
            meanDN /= c;
            for (int j = 0; j < c; j++)
                dxb.set(base + j, s * (d.get(base + j) * w.get(j) - xb.get(base + j) * s * meanDN));
        });
        double[] dw = new double[c];
        for (int r = 0; r < n; r++) {
            double s = rb.get(r);
            for (int j = 0; j < c; j++) dw[j] += d.get(r * c + j) * xb.get(r * c + j) * s;
        }
        accumulate(dweight, dw);
        if (residual != null) addInPlace(dx, residual);
        return dx;
    }

    // ---- activations --------------------------------------------------------------------------------------------

    private static final double GELU_K = Math.sqrt(2.0 / Math.PI);

    @Override public Tensor geluForward(Tensor x) {
        Tensor out = zeros(x.dtype(), x.shape());
        CpuBuffer xb = buf(x), o = buf(out);
        elementwise((int) x.numel(), i -> {
            double v = xb.get(i);
            o.set(i, 0.5 * v * (1 + Math.tanh(GELU_K * (v + 0.044715 * v * v * v))));
        });
        return out;
    }

    @Override public Tensor geluBackward(Tensor dout, Tensor x) {
        Tensor dx = zeros(x.dtype(), x.shape());
        CpuBuffer d = buf(dout), xb = buf(x), o = buf(dx);
        elementwise((int) x.numel(), i -> {
            double v = xb.get(i), th = Math.tanh(GELU_K * (v + 0.044715 * v * v * v));
            double grad = 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * GELU_K * (1 + 3 * 0.044715 * v * v);
            o.set(i, d.get(i) * grad);
        });
        return dx;
    }

    @Override public Tensor swigluForward(Tensor gate, Tensor up) {
        requireSameNumel(gate, up);
        Tensor out = zeros(gate.dtype(), gate.shape());
        CpuBuffer g = buf(gate), u = buf(up), o = buf(out);
        elementwise((int) gate.numel(), i -> {
            double a = g.get(i);
            o.set(i, a / (1 + Math.exp(-a)) * u.get(i));
        });
        return out;
    }

    @Override public Tensor[] swigluBackward(Tensor dout, Tensor gate, Tensor up) {
        Tensor dgate = zeros(gate.dtype(), gate.shape()), dup = zeros(up.dtype(), up.shape());
        CpuBuffer d = buf(dout), g = buf(gate), u = buf(up), dg = buf(dgate), du = buf(dup);
        elementwise((int) gate.numel(), i -> {
            double a = g.get(i), sig = 1 / (1 + Math.exp(-a));
            dg.set(i, d.get(i) * u.get(i) * sig * (1 + a * (1 - sig)));
            du.set(i, d.get(i) * a * sig);
        });
        return new Tensor[] {dgate, dup};
    }

    // ---- attention ----------------------------------------------------------------------------------------------

    @Override public Tensor rope(Tensor x, Tensor cos, Tensor sin, boolean inverse) {
        require(x.rank() == 4, "rope expects x (B,T,H,D), got " + x);
        int bt = x.size(0) * x.size(1), t = x.size(1), h = x.size(2), d = x.size(3), half = d / 2;
        require(d % 2 == 0 && cos.size(0) >= t && cos.size(1) == half, "rope tables " + cos + " do not fit " + x);
        Tensor out = zeros(x.dtype(), x.shape());
        CpuBuffer xb = buf(x), cb = buf(cos), sb = buf(sin), o = buf(out);
        double sign = inverse ? -1 : 1;
        parallelRows(bt, h * d, row -> {
            int pos = row % t;
            for (int head = 0; head < h; head++) {
                int base = (row * h + head) * d;
                for (int i = 0; i < half; i++) {
                    double c = cb.get(pos * half + i), s = sign * sb.get(pos * half + i);
                    double x1 = xb.get(base + i), x2 = xb.get(base + i + half);
                    o.set(base + i, x1 * c - x2 * s);
                    o.set(base + i + half, x2 * c + x1 * s);
                }
            }
        });
        return out;
    }

    @Override public AttentionOutput attentionForward(Tensor q, Tensor k, Tensor v, double scale, Tensor starts) {
        AttentionShape s = AttentionShape.of(q, k, v);
        int[] first = documentStarts(starts, s);
        Tensor out = zeros(q.dtype(), q.shape()), lse = zeros(statsType(q), s.b, s.h, s.t);
        CpuBuffer qb = buf(q), kb = buf(k), vb = buf(v), ob = buf(out), lb = buf(lse);
        IntStream.range(0, s.b * s.h).parallel().forEach(bh -> {
            int b = bh / s.h, h = bh % s.h, kvh = h / s.group();
            double[] p = new double[s.t], acc = new double[s.d];
            for (int i = 0; i < s.t; i++) {
                int from = first == null ? 0 : first[b * s.t + i];
                lb.set((b * s.h + h) * s.t + i, attendRow(qb, s.q(b, i, h), kb, vb, j -> s.kv(b, from + j, kvh), i - from, s.d, scale, p, acc, ob));
            }
        });
        return new AttentionOutput(out, lse);
    }

    /** starts (B,T) as ints, each checked to lie in [0, its position]; null stays null (one document a row). */
    private int[] documentStarts(Tensor starts, AttentionShape s) {
        if (starts == null) return null;
        require(starts.dtype() == DType.I32 && starts.numel() == (long) s.b * s.t, "document starts " + starts + " do not match (B,T) = (" + s.b + "," + s.t + ")");
        int[] first = ints(starts);
        for (int i = 0; i < first.length; i++)
            require(first[i] >= 0 && first[i] <= i % s.t, "position " + i % s.t + " of row " + i / s.t + " starts its document at " + first[i]);
        return first;
    }

    @Override public Tensor attentionCached(Tensor q, Tensor k, Tensor v, int length, double scale) {
        require(q.rank() == 4 && k.rank() == 4 && java.util.Arrays.equals(k.shape(), v.shape()) && k.size(0) == q.size(0) && k.size(3) == q.size(3),
                "cached attention expects q (B,Tq,H,D) and caches (B,Tmax,Hkv,D): q " + q + ", k " + k + ", v " + v);
        int b = q.size(0), tq = q.size(1), h = q.size(2), d = q.size(3), tmax = k.size(1), hkv = k.size(2), group = h / hkv;
        require(h % hkv == 0 && tq <= length && length <= tmax, "cached attention of " + tq + " queries over " + length + " of " + tmax + " positions");
        Tensor out = zeros(q.dtype(), q.shape());
        CpuBuffer qb = buf(q), kb = buf(k), vb = buf(v), ob = buf(out);
        IntStream.range(0, b * h).parallel().forEach(bh -> {
            int bi = bh / h, hi = bh % h, kvh = hi / group;
            double[] p = new double[length], acc = new double[d];
            for (int i = 0; i < tq; i++)
                attendRow(qb, ((bi * tq + i) * h + hi) * d, kb, vb, j -> ((bi * tmax + j) * hkv + kvh) * d, length - tq + i, d, scale, p, acc, ob);
        });
        return out;
    }

    /** Writes query row qi's softmax-weighted sum of values 0..last (rows kvAt(j) of k and v) into out; returns its log-sum-exp. */
    private static double attendRow(CpuBuffer qb, int qi, CpuBuffer kb, CpuBuffer vb, java.util.function.IntUnaryOperator kvAt, int last,
                                    int d, double scale, double[] p, double[] acc, CpuBuffer out) {
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j <= last; j++) {
            p[j] = qb.dot(qi, kb, kvAt.applyAsInt(j), d) * scale;
            max = Math.max(max, p[j]);
        }
        double sum = 0;
        for (int j = 0; j <= last; j++) sum += p[j] = Math.exp(p[j] - max);
        Arrays.fill(acc, 0);
        for (int j = 0; j <= last; j++) vb.addScaledTo(acc, 0, p[j], kvAt.applyAsInt(j), d);
        for (int e = 0; e < d; e++) out.set(qi + e, acc[e] / sum);
        return max + Math.log(sum);
    }

    @Override public void copyIntoPositions(Tensor src, Tensor dst, int at) {
        int b = src.size(0), t = src.size(1), tmax = dst.size(1), row = (int) (src.numel() / ((long) b * t));
        require(dst.size(0) == b && dst.numel() == (long) b * tmax * row && at >= 0 && at + t <= tmax && src.dtype() == dst.dtype(),
                "cannot write " + src + " into positions " + at + ".." + (at + t) + " of " + dst);
        CpuBuffer s = buf(src), d = buf(dst);
        for (int bi = 0; bi < b; bi++)
            for (int i = 0; i < t * row; i++) d.set((bi * tmax + at) * row + i, s.get(bi * t * row + i));
    }

    @Override public Tensor[] attentionBackward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                                                double scale, Tensor starts) {
        AttentionShape s = AttentionShape.of(q, k, v);
        int[] first = documentStarts(starts, s);
        Tensor dq = zeros(q.dtype(), q.shape()), dk = zeros(k.dtype(), k.shape()), dv = zeros(v.dtype(), v.shape());
        CpuBuffer qb = buf(q), kb = buf(k), vb = buf(v), ob = buf(out), lb = buf(lse), dob = buf(dout);
        CpuBuffer dqb = buf(dq), dkb = buf(dk), dvb = buf(dv);
        // One task per (batch, kv head): the query heads of a group all add into the same dk and dv rows.
        IntStream.range(0, s.b * s.hkv).parallel().forEach(bkv -> {
            int b = bkv / s.hkv, kvh = bkv % s.hkv;
            double[] p = new double[s.t], dkAcc = new double[s.t * s.d], dvAcc = new double[s.t * s.d], dqAcc = new double[s.d];
            for (int h = kvh * s.group(); h < (kvh + 1) * s.group(); h++) {
                for (int i = 0; i < s.t; i++) {
                    int qi = s.q(b, i, h);
                    double rowLse = lb.get((b * s.h + h) * s.t + i), rowD = dob.dot(qi, ob, qi, s.d);
                    Arrays.fill(dqAcc, 0);
                    for (int j = first == null ? 0 : first[b * s.t + i]; j <= i; j++) {
                        int kj = s.kv(b, j, kvh);
                        double pij = Math.exp(qb.dot(qi, kb, kj, s.d) * scale - rowLse);
                        double ds = pij * (dob.dot(qi, vb, kj, s.d) - rowD) * scale;
                        dob.addScaledTo(dvAcc, j * s.d, pij, qi, s.d);
                        qb.addScaledTo(dkAcc, j * s.d, ds, qi, s.d);
                        kb.addScaledTo(dqAcc, 0, ds, kj, s.d);
                    }
                    for (int e = 0; e < s.d; e++) dqb.set(qi + e, dqAcc[e]);
                }
            }
            for (int j = 0; j < s.t; j++) {
                int kj = s.kv(b, j, kvh);
                for (int e = 0; e < s.d; e++) {
                    dkb.set(kj + e, dkAcc[j * s.d + e]);
                    dvb.set(kj + e, dvAcc[j * s.d + e]);
                }
            }
        });
        return new Tensor[] {dq, dk, dv};
    }

    /** Index arithmetic for q (B,T,H,D) and k, v (B,T,Hkv,D). */
    private record AttentionShape(int b, int t, int h, int hkv, int d) {
        static AttentionShape of(Tensor q, Tensor k, Tensor v) {
            require(q.rank() == 4 && k.rank() == 4 && v.rank() == 4, "attention expects (B,T,H,D) tensors");
            var s = new AttentionShape(q.size(0), q.size(1), q.size(2), k.size(2), q.size(3));
            require(k.size(0) == s.b && k.size(1) == s.t && k.size(3) == s.d && java.util.Arrays.equals(k.shape(), v.shape()),
                    "attention shapes do not agree: q " + q + ", k " + k + ", v " + v);
            require(s.h % s.hkv == 0, "query heads " + s.h + " are not a multiple of key/value heads " + s.hkv);
            return s;
        }

        int group() { return h / hkv; }

        int q(int bi, int ti, int hi) { return ((bi * t + ti) * h + hi) * d; }

        int kv(int bi, int ti, int hi) { return ((bi * t + ti) * hkv + hi) * d; }
    }

    // ---- loss ---------------------------------------------------------------------------------------------------

    @Override public Tensor crossEntropy(Tensor logits, int classes, Tensor targets, Tensor dlogits, double gradScale) {
        int w = logits.size(-1), n = (int) (logits.numel() / w);
        require(targets.numel() == n, "targets " + targets + " do not match logits " + logits);
        require(classes > 0 && classes <= w, "cross-entropy over " + classes + " classes of logits " + logits);
        int[] tg = ints(targets);
        for (int r = 0; r < n; r++)
            if (tg[r] >= classes) throw new IndexOutOfBoundsException("target " + tg[r] + " at row " + r + " is outside the vocabulary of " + classes);
        Tensor losses = zeros(statsType(logits), n);
        CpuBuffer lg = buf(logits), lb = buf(losses), dl = dlogits == null ? null : buf(dlogits);
        if (lg instanceof CpuBuffer.F32 f && (dl == null || dl instanceof CpuBuffer.F32)) {
            float[] out = dl == null ? null : ((CpuBuffer.F32) dl).a();
            float[] rowLoss = ((CpuBuffer.F32) lb).a();
            parallelRows(n, w, r -> {
                rowLoss[r] = (float) VectorMath.crossEntropyRow(f.a(), out, r * w, classes, tg[r], gradScale);
                if (out != null) Arrays.fill(out, r * w + classes, (r + 1) * w, 0f);
            });
            return losses;
        }
        parallelRows(n, w, r -> {
            int base = r * w;
            if (dl != null) for (int j = classes; j < w; j++) dl.set(base + j, 0);
            if (tg[r] < 0) {
                if (dl != null) for (int j = 0; j < classes; j++) dl.set(base + j, 0);
                return;
            }
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < classes; j++) max = Math.max(max, lg.get(base + j));
            double target = lg.get(base + tg[r]), sum = 0;
            if (dl == null) {
                for (int j = 0; j < classes; j++) sum += Math.exp(lg.get(base + j) - max);
            } else {
                // One exp per element: keep exp(x - max) in dlogits (which may be the logits), normalise after.
                for (int j = 0; j < classes; j++) {
                    double e = Math.exp(lg.get(base + j) - max);
                    dl.set(base + j, e);
                    sum += e;
                }
                double scale = gradScale / sum;
                for (int j = 0; j < classes; j++) dl.set(base + j, dl.get(base + j) * scale);
                dl.set(base + tg[r], dl.get(base + tg[r]) - gradScale);
            }
            lb.set(r, Math.log(sum) + max - target);
        });
        return losses;
    }

    @Override public Tensor crossEntropyStats(Tensor logits, int classes, int firstClass, Tensor targets) {
        int w = logits.size(-1), n = (int) (logits.numel() / w);
        require(targets.numel() == n && classes >= 0 && classes <= w, "cross-entropy stats over " + classes + " classes of logits " + logits);
        int[] tg = ints(targets);
        Tensor stats = zeros(statsType(logits), n, 3);
        CpuBuffer lg = buf(logits), st = buf(stats);
        parallelRows(n, w, r -> {
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int j = 0; j < classes; j++) max = Math.max(max, lg.get(r * w + j));
            for (int j = 0; j < classes; j++) sum += Math.exp(lg.get(r * w + j) - max);
            int local = tg[r] - firstClass;
            st.set(3 * r, max);
            st.set(3 * r + 1, sum);
            st.set(3 * r + 2, local >= 0 && local < classes ? lg.get(r * w + local) : 0);
        });
        return stats;
    }

    @Override public Tensor crossEntropyFromStats(Tensor logits, int classes, int firstClass, Tensor targets, Tensor stats, Tensor dlogits,
                                                  double gradScale) {
        int w = logits.size(-1), n = (int) (logits.numel() / w), ranks = (int) (stats.numel() / (3L * n));
        require(stats.numel() == 3L * n * ranks && targets.numel() == n, "stats " + stats + " do not hold (R," + n + ",3) for logits " + logits);
        int[] tg = ints(targets);
        Tensor losses = zeros(statsType(logits), n);
        CpuBuffer lg = buf(logits), st = buf(stats), lb = buf(losses), dl = dlogits == null ? null : buf(dlogits);
        parallelRows(n, w, r -> {
            if (tg[r] < 0) {
                if (dl != null) for (int j = 0; j < w; j++) dl.set(r * w + j, 0);
                return;
            }
            double max = Double.NEGATIVE_INFINITY, sum = 0, target = 0;
            for (int k = 0; k < ranks; k++) max = Math.max(max, st.get(3 * (k * n + r)));
            for (int k = 0; k < ranks; k++) {
                double m = st.get(3 * (k * n + r));
                if (m != Double.NEGATIVE_INFINITY) sum += st.get(3 * (k * n + r) + 1) * Math.exp(m - max);
                target += st.get(3 * (k * n + r) + 2);
            }
            lb.set(r, Math.log(sum) + max - target);
            if (dl == null) return;
            int local = tg[r] - firstClass;
            for (int j = 0; j < w; j++)
                dl.set(r * w + j, j < classes ? gradScale * (Math.exp(lg.get(r * w + j) - max) / sum - (j == local ? 1 : 0)) : 0);
        });
        return losses;
    }

    // ---- optimizer ----------------------------------------------------------------------------------------------

    @Override public void adamw(List<AdamWSlot> slots, AdamWSettings st, Tensor schedule, Tensor gradSumSquares) {
        CpuBuffer sched = buf(schedule);
        double lr = sched.get(0), bc1 = sched.get(1), bc2Sqrt = sched.get(2), stepSize = lr / bc1;
        double norm = Math.sqrt(buf(gradSumSquares).get(0));
        if (!Double.isFinite(norm)) return;
        double gradScale = st.maxGradNorm() > 0 ? Math.min(1.0, st.maxGradNorm() / (norm + 1e-6)) : 1.0;
        for (AdamWSlot slot : slots) {
            requireSameNumel(slot.param(), slot.grad());
            CpuBuffer p = buf(slot.param()), g = buf(slot.grad()), mb = buf(slot.m()), vb = buf(slot.v());
            double decay = 1 - lr * slot.weightDecay();
            int at = Math.toIntExact(slot.stateAt());
            elementwise((int) slot.param().numel(), i -> {
                double gi = g.get(i) * gradScale;
                double mi = mb.get(at + i) + (1 - st.beta1()) * (gi - mb.get(at + i)); // torch's lerp form
                double vi = st.beta2() * vb.get(at + i) + (1 - st.beta2()) * gi * gi;
                mb.set(at + i, mi);
                vb.set(at + i, vi);
                p.set(i, p.get(i) * decay - stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + st.eps()));
            });
            if (slot.copy() != null) copyInto(slot.param(), slot.copy());
        }
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    private static CpuBuffer buf(Tensor t) {
        if (!(t.storage() instanceof CpuBuffer b)) throw new IllegalArgumentException(t + " is not a CPU tensor");
        return b;
    }

    private static int[] ints(Tensor t) {
        if (!(buf(t) instanceof CpuBuffer.I32 b)) throw new IllegalArgumentException("expected an i32 tensor, got " + t);
        return b.a();
    }

    private static DType statsType(Tensor x) { return x.dtype() == DType.F64 ? DType.F64 : DType.F32; }

    private static void accumulate(Tensor t, double[] add) {
        if (t == null) return;
        CpuBuffer b = buf(t);
        for (int i = 0; i < add.length; i++) b.set(i, b.get(i) + add[i]);
    }

    /** Runs body(row) for every row, in parallel when there is enough work to pay for it. */
    private static void parallelRows(int rows, int rowWork, IntConsumer body) {
        if ((long) rows * rowWork < 1 << 15) for (int r = 0; r < rows; r++) body.accept(r);
        else IntStream.range(0, rows).parallel().forEach(body);
    }

    private static void elementwise(int n, IntConsumer body) {
        if (n < 1 << 16) for (int i = 0; i < n; i++) body.accept(i);
        else IntStream.range(0, n).parallel().forEach(body);
    }

    private static int checkedNumel(int[] shape) {
        long n = Tensor.numel(shape);
        require(n <= Integer.MAX_VALUE - 16, "tensor of " + n + " elements is too large for the CPU backend");
        return (int) n;
    }

    private static void requireLength(int length, int[] shape) {
        require(length == Tensor.numel(shape), length + " values do not fill shape " + Arrays.toString(shape));
    }

    private static void requireSameNumel(Tensor a, Tensor b) {
        require(a.numel() == b.numel(), "element counts differ: " + a + " vs " + b);
    }

    private static void require(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(message);
    }
}
