package dev.strata.runtime.cuda;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Device;
import dev.strata.runtime.Fp8;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUgraphExec_st;
import org.bytedeco.cuda.cudart.CUgraph_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.cudart.cudaDeviceProp;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.ShortPointer;

/**
 * The CUDA backend: one device, one stream. Activations are f32 or bf16 (mixed precision: bf16 GEMM operands and
 * activations, f32 parameters, gradients, optimizer state and reductions); every op is a kernel of the {@code .cu}
 * resources, picked by the activation dtype's suffix, or a cuBLASLt GEMM, all enqueued on the stream; only host
 * transfers wait.
 */
public final class CudaBackend implements Backend {
    /** Device memory behind a tensor: its address and the bytes asked for. */
    record DeviceBuffer(long address, long bytes) {}

    private static final int THREADS = 256;

    private final Device device;
    private final CUstream_st stream = new CUstream_st();
    private CUstream_st toHostStream, fromHostStream; // host transfers that overlap compute, one stream each way; made on first use
    private final DeviceAllocator allocator = new DeviceAllocator();
    private final OpTimer timer = new OpTimer(stream);
    private final Kernels kernels;
    private final CublasLtGemm gemm;
    /** A device f32 1.0: the scale of an FP8 GEMM whose per-row scales are applied after it. */
    private final Tensor unitScale;
    private final int multiprocessors, computeCapability;
    boolean wgmmaAttention; // Hopper's wgmma (sm_90 alone); tests turn it off to check the mma.sync kernels there too
    private boolean deterministic; // sums that meet in atomics are added in a fixed order instead
    private final String name;
    private final Map<List<Long>, SlotTable> slotTables = new HashMap<>();

    private CudaBackend(int index) {
        Cuda.load();
        int[] count = new int[1];
        int status = cudart.cudaGetDeviceCount(count);
        if (status != 0 || count[0] == 0)
            throw new CudaException("no CUDA device found (cudaGetDeviceCount: " + cudart.cudaGetErrorString(status).getString()
                    + "); looked for an NVIDIA driver (libcuda.so.1) and a GPU visible to this process");
        if (index >= count[0]) throw new CudaException("CUDA device " + index + " requested, but only " + count[0] + " visible");
        Cuda.check(cudart.cudaSetDevice(index), "cudaSetDevice(" + index + ")");
        Cuda.check(cudart.cudaFree(null), "cudaFree(0) (context creation)");
        cudaDeviceProp prop = new cudaDeviceProp();
        Cuda.check(cudart.cudaGetDeviceProperties(prop, index), "cudaGetDeviceProperties");
        this.name = prop.name().getString();
        this.multiprocessors = prop.multiProcessorCount();
        this.computeCapability = prop.major() * 10 + prop.minor();
        this.wgmmaAttention = computeCapability == 90;
        this.device = Device.cuda(index);
        Cuda.check(cudart.cudaStreamCreateWithFlags(stream, cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
        this.kernels = new Kernels(prop.major(), prop.minor(), stream, timer);
        this.gemm = new CublasLtGemm(stream, allocator);
        this.unitScale = fromDoubles(new double[] {1}, DType.F32, 1);
    }

    /** Opens device {@code index}; fails with what was looked for when there is no driver, library or GPU. */
    public static CudaBackend open(int index) { return new CudaBackend(index); }

    /** How many CUDA devices this process sees: 0 where CUDA cannot load. */
    public static int deviceCount() {
        try {
            Cuda.load();
            int[] count = new int[1];
            return cudart.cudaGetDeviceCount(count) == 0 ? count[0] : 0;
        } catch (CudaException | LinkageError e) {
            return 0;
        }
    }

    /** Why a CUDA backend cannot be opened here, or null when it can. */
    public static String unavailableReason() {
        try {
            Cuda.load();
            int[] count = new int[1];
            int status = cudart.cudaGetDeviceCount(count);
            return status == 0 && count[0] > 0 ? null : "no CUDA device (cudaGetDeviceCount status " + status + ")";
        } catch (CudaException | LinkageError e) {
            return e.getMessage();
        }
    }

    @Override public Device device() { return device; }

    public String deviceName() { return name; }

    /** A device's name and memory in bytes, as the driver reports them. */
    public record Properties(String name, long totalMemory) {}

    /** Device {@code index}'s properties, read without opening a backend on it (no streams, handles or allocator). */
    public static Properties properties(int index) {
        Cuda.load();
        cudaDeviceProp prop = new cudaDeviceProp();
        Cuda.check(cudart.cudaGetDeviceProperties(prop, index), "cudaGetDeviceProperties(" + index + ")");
        return new Properties(prop.name().getString(), prop.totalGlobalMem());
    }

    /** Device {@code index}'s PCI address as sysfs names it, e.g. 0000:17:00.0. */
    public static String pciBusId(int index) {
        Cuda.load();
        cudaDeviceProp prop = new cudaDeviceProp();
        Cuda.check(cudart.cudaGetDeviceProperties(prop, index), "cudaGetDeviceProperties(" + index + ")");
        return String.format(java.util.Locale.ROOT, "%04x:%02x:%02x.0", prop.pciDomainID(), prop.pciBusID(), prop.pciDeviceID());
    }

    public DeviceAllocator allocator() { return allocator; }

    @Override public void synchronize() { Cuda.check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize"); }

    /** Times every GEMM and kernel with events from now on (or stops); {@link #opTimes} reads the sums. */
    public void timeOps(boolean on) { timer.enable(on); }

    /** Device milliseconds per op (kernel name, or "gemm MxNxK dtype") since the last call; waits for the stream. */
    public java.util.Map<String, Double> opTimes() { return timer.drain(); }

    /** Device milliseconds from the first to the last op that {@code work} enqueues, by events; waits for them. */
    public double deviceMs(Runnable work) { return timer.span(work); }

    /** A CUDA tensor's device memory as a JavaCPP pointer, for libraries that take raw pointers (NCCL); it owns nothing. */
    public static Pointer devicePointer(Tensor t) { return Cuda.at(address(t)); }

    /** The stream every op of this backend is enqueued on; work on other streams orders itself against it with events. */
    public CUstream_st stream() { return stream; }

    static long address(Tensor t) {
        if (!(t.storage() instanceof DeviceBuffer b)) throw new IllegalArgumentException(t + " is not a CUDA tensor");
        return b.address();
    }

    // ---- memory -------------------------------------------------------------------------------------------------

    @Override public Tensor zeros(DType dtype, int... shape) {
        Tensor t = empty(dtype, shape);
        zero(t);
        return t;
    }

    @Override public Tensor empty(DType dtype, int... shape) {
        if (dtype == DType.F16 || dtype == DType.U8)
            throw new UnsupportedOperationException("the CUDA backend holds f64, f32, bf16, fp8 and integer tensors, not " + dtype.configName());
        long bytes = Tensor.numel(shape) * dtype.byteSize();
        return new Tensor(this, new DeviceBuffer(allocator.allocate(bytes), bytes), dtype, shape, true);
    }

    @Override public Tensor fromDoubles(double[] data, DType dtype, int... shape) {
        require(data.length == Tensor.numel(shape), data.length + " values do not fill shape " + Arrays.toString(shape));
        Tensor t = empty(dtype, shape);
        if (dtype == DType.F64) {
            try (DoublePointer host = new DoublePointer(data)) {
                upload(host, t);
            }
        } else if (dtype == DType.BF16) {
            short[] h = new short[data.length];
            for (int i = 0; i < h.length; i++) h[i] = HostTensor.toBf16((float) data[i]);
            try (ShortPointer host = new ShortPointer(h)) {
                upload(host, t);
            }
        } else {
            float[] f = new float[data.length];
            for (int i = 0; i < f.length; i++) f[i] = (float) data[i];
            try (FloatPointer host = new FloatPointer(f)) {
                upload(host, t);
            }
        }
        return t;
    }

    @Override public Tensor fromInts(int[] data, int... shape) {
        require(data.length == Tensor.numel(shape), data.length + " values do not fill shape " + Arrays.toString(shape));
        Tensor t = empty(DType.I32, shape);
        try (IntPointer host = new IntPointer(data)) {
            upload(host, t);
        }
        return t;
    }

    /** Device memory holds the same little-endian bytes a HostTensor does: one copy each way, through direct memory. */
    @Override public Tensor fromBytes(java.nio.ByteBuffer data, DType dtype, int... shape) {
        Tensor t = empty(dtype, shape);
        java.nio.ByteBuffer b = data.slice();
        require(b.remaining() == bytes(t), b.remaining() + " bytes do not fill " + t);
        java.nio.ByteBuffer direct = b.isDirect() ? b : java.nio.ByteBuffer.allocateDirect(b.remaining()).put(b).flip();
        try (BytePointer host = new BytePointer(direct)) {
            upload(host, t);
        }
        return t;
    }

    @Override public java.nio.ByteBuffer toBytes(Tensor t) {
        java.nio.ByteBuffer out = java.nio.ByteBuffer.allocateDirect(Math.toIntExact(bytes(t))).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        try (BytePointer host = new BytePointer(out)) {
            download(t, host);
        }
        return out;
    }

    private void upload(Pointer host, Tensor t) {
        Cuda.check(cudart.cudaMemcpyAsync(Cuda.at(address(t)), host, bytes(t), cudart.cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync H2D");
        synchronize();
    }

    private void download(Tensor t, Pointer host) {
        Cuda.check(cudart.cudaMemcpyAsync(host, Cuda.at(address(t)), bytes(t), cudart.cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync D2H");
        synchronize();
    }

    @Override public double[] toDoubles(Tensor t) {
        int n = Math.toIntExact(t.numel());
        double[] out = new double[n];
        switch (t.dtype()) {
            case F64 -> {
                try (DoublePointer host = new DoublePointer(n)) {
                    download(t, host);
                    host.get(out);
                }
            }
            case F32 -> {
                float[] f = new float[n];
                try (FloatPointer host = new FloatPointer(n)) {
                    download(t, host);
                    host.get(f);
                }
                for (int i = 0; i < n; i++) out[i] = f[i];
            }
            case BF16 -> {
                short[] h = new short[n];
                try (ShortPointer host = new ShortPointer(n)) {
                    download(t, host);
                    host.get(h);
                }
                for (int i = 0; i < n; i++) out[i] = Float.intBitsToFloat((h[i] & 0xffff) << 16);
            }
            case I32 -> {
                int[] ints = toInts(t);
                for (int i = 0; i < n; i++) out[i] = ints[i];
            }
            case FP8_E4M3, FP8_E5M2 -> {
                byte[] codes = fp8Codes(t);
                Fp8 format = Fp8.of(t.dtype());
                for (int i = 0; i < n; i++) out[i] = format.decode(codes[i]);
            }
            default -> throw new UnsupportedOperationException("toDoubles of " + t);
        }
        return out;
    }

    /** The raw codes of an FP8 tensor. */
    public byte[] fp8Codes(Tensor t) {
        byte[] out = new byte[Math.toIntExact(t.numel())];
        try (BytePointer host = new BytePointer(out.length)) {
            download(t, host);
            host.get(out);
        }
        return out;
    }

    /** Writes raw codes into an FP8 tensor. */
    public void uploadFp8Codes(byte[] codes, Tensor dst) {
        require(codes.length == dst.numel(), codes.length + " codes do not fill " + dst);
        try (BytePointer host = new BytePointer(codes)) {
            upload(host, dst);
        }
    }

    /** The codes the GPU gives x (f32) in format, at scale 1: for comparing with {@link Fp8#encode} bit for bit. */
    public byte[] encodeFp8(Tensor x, DType format) {
        requireFp8TensorCores();
        requireF32(x);
        try (Tensor codes = empty(format, x.shape())) {
            elementwiseIn("fp8.cu", "fp8_encode", x.numel(), x, x.numel(), format == DType.FP8_E5M2 ? 1 : 0, codes);
            return fp8Codes(codes);
        }
    }

    @Override public int[] toInts(Tensor t) {
        require(t.dtype() == DType.I32, "expected an i32 tensor, got " + t);
        int[] out = new int[Math.toIntExact(t.numel())];
        try (IntPointer host = new IntPointer(out.length)) {
            download(t, host);
            host.get(out);
        }
        return out;
    }

    @Override public Tensor copy(Tensor src) {
        Tensor dst = empty(src.dtype(), src.shape());
        copyInto(src, dst);
        return dst;
    }

    @Override public void copyInto(Tensor src, Tensor dst) {
        require(src.numel() == dst.numel(), "element counts differ: " + src + " vs " + dst);
        if (src.device().equals(Device.CPU) || !(src.storage() instanceof DeviceBuffer)) {
            try (Tensor up = fromDoubles(src.backend().toDoubles(src), dst.dtype(), dst.shape())) {
                copyInto(up, dst);
            }
            return;
        }
        if (src.dtype() != dst.dtype()) {
            require(floatOrBf16(src) && floatOrBf16(dst), "no GPU conversion from " + src + " to " + dst);
            elementwise("convert_" + suffix(src) + "_" + suffix(dst), src.numel(), src, dst, src.numel());
            return;
        }
        Cuda.check(cudart.cudaMemcpyAsync(Cuda.at(address(dst)), Cuda.at(address(src)), bytes(src), cudart.cudaMemcpyDeviceToDevice, stream),
                "cudaMemcpyAsync D2D");
    }

    @Override public void copyElements(Tensor src, long srcAt, Tensor dst, long dstAt, long n) {
        Backend.requireRange(src, srcAt, dst, dstAt, n);
        long e = src.dtype().byteSize();
        Cuda.check(cudart.cudaMemcpyAsync(Cuda.at(address(dst) + dstAt * e), Cuda.at(address(src) + srcAt * e), n * e,
                cudart.cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync D2D");
    }

    @Override public void zero(Tensor t) {
        Cuda.check(cudart.cudaMemsetAsync(Cuda.at(address(t)), 0, bytes(t), stream), "cudaMemsetAsync");
    }

    @Override public void free(Tensor t) {
        DeviceBuffer b = (DeviceBuffer) t.storage();
        allocator.free(b.address(), b.bytes());
    }

    // ---- dense algebra ------------------------------------------------------------------------------------------

    @Override public void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor c, double alpha, double beta) {
        gemm(a, transA, b, transB, c, alpha, beta, null);
    }

    /** The bias rides in cuBLASLt's epilogue (CUBLASLT_EPILOGUE_BIAS), in the output's dtype as cuBLASLt reads it. */
    @Override public void matmulBias(Tensor a, boolean transA, Tensor b, boolean transB, Tensor c, double beta, Tensor bias) {
        require(bias.rank() == 1 && bias.size(0) == c.size(1) && bias.dtype() == c.dtype(), "bias " + bias + " does not fit the product " + c);
        gemm(a, transA, b, transB, c, 1, beta, bias);
    }

    private void gemm(Tensor a, boolean transA, Tensor b, boolean transB, Tensor c, double alpha, double beta, Tensor bias) {
        require(a.rank() == 2 && b.rank() == 2 && c.rank() == 2, "matmul needs 2-D tensors: " + a + ", " + b + ", " + c);
        int m = transA ? a.size(1) : a.size(0), k = transA ? a.size(0) : a.size(1);
        int kb = transB ? b.size(1) : b.size(0), n = transB ? b.size(0) : b.size(1);
        require(k == kb && c.size(0) == m && c.size(1) == n,
                "matmul shapes do not agree: " + a + (transA ? "ᵀ" : "") + " @ " + b + (transB ? "ᵀ" : "") + " -> " + c);
        require(a.dtype() == b.dtype() && floatOrBf16(a) && (c.dtype() == a.dtype() || c.dtype() == DType.F32),
                "matmul takes f32 or bf16 operands of one dtype and writes theirs or f32: " + a + ", " + b + " -> " + c);
        require(k > 0 || bias == null, "a biased product needs a contracted dimension, got " + a + " @ " + b);
        if (k == 0) {
            scale(c, beta);
            return;
        }
        String name = "gemm " + m + "x" + n + "x" + k + " " + c.dtype().configName() + (bias == null ? "" : " +bias");
        timer.time(name, () -> gemm.matmul(address(a), transA, address(b), transB, address(c), m, n, k, (float) alpha, (float) beta,
                cudaType(a.dtype()), cudaType(c.dtype()), bias == null ? 0 : address(bias)));
    }

    @Override public void addBias(Tensor x, Tensor bias) {
        requireF32(bias);
        elementwise("add_bias_" + suffix(x), x.numel(), x, bias, x.numel(), bias.size(0));
    }

    @Override public void sumRowsAccumulate(Tensor dy, Tensor dbias) {
        columnSums(dy, null, null, null, null, dbias);
    }

    /**
     * Column sums of (N,C) activations into f32 (C) accumulators, in a fixed order: db += Σ dout and, with x,
     * dw += Σ dout·(x − mean)·rstd (mean null for RMSNorm). Either accumulator may be null.
     */
    private void columnSums(Tensor dout, Tensor x, Tensor mean, Tensor rstd, Tensor dw, Tensor db) {
        if (dw == null && db == null) return;
        requireF32(dw == null ? db : dw);
        int c = dout.size(-1);
        long n = dout.numel() / c;
        int rows = (int) Math.max(8, ceil(n, 128)), chunks = ceil(n, rows);
        try (Tensor pw = dw == null ? null : empty(DType.F32, chunks, c); Tensor pb = db == null ? null : empty(DType.F32, chunks, c)) {
            int v = c % 8 == 0 ? 8 : 1; // columns a thread
            kernels.launch2d("reduce.cu", (v == 8 ? "column_partials8_" : "column_partials_") + suffix(dout), ceil(c, 32 * v), chunks, 1, 32, 8,
                    dout, x, mean, rstd, pw, pb, n, c, rows);
            if (dw != null) addColumnSums(pw, dw);
            if (db != null) addColumnSums(pb, db);
        }
    }

    @Override public Tensor add(Tensor a, Tensor b) {
        requireSame(a, b);
        Tensor out = empty(a.dtype(), a.shape());
        elementwise("add_" + suffix(a), a.numel(), a, b, out, a.numel());
        return out;
    }

    @Override public void addInPlace(Tensor acc, Tensor x) {
        requireSame(acc, x);
        require(acc.numel() == x.numel(), "element counts differ: " + acc + " vs " + x);
        elementwise("add_inplace_" + suffix(acc), acc.numel(), acc, x, acc.numel());
    }

    @Override public void scale(Tensor t, double s) {
        elementwise("scale_" + suffix(t), t.numel(), t, (float) s, t.numel());
    }

    @Override public void sumOfSquares(List<Tensor> tensors, Tensor out) {
        require(out.dtype() == DType.F64 && out.numel() == 1, "sumOfSquares writes one f64 element, not into " + out);
        List<Slot> slots = new ArrayList<>();
        for (Tensor t : tensors) {
            requireF32(t);
            slots.add(new Slot(t, null, null, null, 0, null, 0));
        }
        SlotTable table = slotTable(slots);
        if (table.chunkCount() == 0) {
            zero(out);
            return;
        }
        try (Tensor partials = empty(DType.F64, (int) table.chunkCount())) {
            kernels.launch("optimizer.cu", "multi_sum_squares", (int) table.chunkCount(), 1, 1, THREADS, table.slots(), table.chunks(), partials);
            kernels.launch("optimizer.cu", "sum_partials", 1, 1, 1, 1024, partials, table.chunkCount(), out);
        }
    }

    // ---- embedding ----------------------------------------------------------------------------------------------

    @Override public Tensor embeddingForward(Tensor ids, Tensor table, DType dtype, int firstRow) {
        requireF32(table);
        int n = (int) ids.numel(), c = table.size(1);
        Tensor out = empty(dtype, n, c);
        elementwise("embedding_fwd_" + suffix(out), (long) n * c, ids, table, out, (long) n, c, firstRow, table.size(0));
        return out;
    }

    @Override public void embeddingBackward(Tensor ids, Tensor dout, Tensor dtable, int firstRow) {
        requireF32(dtable);
        int n = (int) ids.numel(), c = dtable.size(1);
        if (deterministic) kernels.launch("elementwise.cu", "embedding_bwd_ordered_" + suffix(dout), ceil(dtable.size(0), 32), 1, 1, THREADS, ids, dout, dtable,
                (long) n, c, firstRow, dtable.size(0));
        else elementwise("embedding_bwd_" + suffix(dout), (long) n * c, ids, dout, dtable, (long) n, c, firstRow, dtable.size(0));
    }

    // ---- normalisation ------------------------------------------------------------------------------------------

    @Override public NormOutput layerNormForward(Tensor x, Tensor weight, Tensor bias, double eps) {
        requireF32(weight, bias);
        int c = x.size(-1), n = (int) (x.numel() / c);
        Tensor out = empty(x.dtype(), x.shape()), mean = empty(DType.F32, n), rstd = empty(DType.F32, n);
        kernels.launch("norms.cu", "layernorm_fwd_" + suffix(x), n, 1, 1, normThreads(c), x, weight, bias, out, mean, rstd, c, (float) eps);
        return new NormOutput(out, mean, rstd);
    }

    @Override public Tensor layerNormBackward(Tensor dout, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dweight, Tensor dbias,
                                              Tensor residual) {
        int c = x.size(-1), n = (int) (x.numel() / c);
        requireSame(dout, x);
        requireResidual(residual, x);
        Tensor dx = empty(x.dtype(), x.shape());
        if (spansRow(c)) {
            backwardInChunks("layernorm_bwd_dw_" + suffix(x), new Object[] {dout, x, weight, mean, rstd, residual, dx}, n, c, dweight, dbias);
            return dx;
        }
        kernels.launch("norms.cu", "layernorm_bwd_" + suffix(x), n, 1, 1, rowThreads(c), dout, x, weight, mean, rstd, residual, dx, c);
        columnSums(dout, x, mean, rstd, dweight, dbias);
        return dx;
    }

    @Override public NormOutput rmsNormForward(Tensor x, Tensor weight, double eps) {
        requireF32(weight);
        int c = x.size(-1), n = (int) (x.numel() / c);
        Tensor out = empty(x.dtype(), x.shape()), rstd = empty(DType.F32, n);
        kernels.launch("norms.cu", "rmsnorm_fwd_" + suffix(x), n, 1, 1, normThreads(c), x, weight, out, rstd, c, (float) eps);
        return new NormOutput(out, null, rstd);
    }

    @Override public Tensor rmsNormBackward(Tensor dout, Tensor x, Tensor weight, Tensor rstd, Tensor dweight, Tensor residual) {
        int c = x.size(-1), n = (int) (x.numel() / c);
        requireSame(dout, x);
        requireResidual(residual, x);
        Tensor dx = empty(x.dtype(), x.shape());
        if (spansRow(c)) {
            backwardInChunks("rmsnorm_bwd_dw_" + suffix(x), new Object[] {dout, x, weight, rstd, residual, dx}, n, c, dweight);
            return dx;
        }
        kernels.launch("norms.cu", "rmsnorm_bwd_" + suffix(x), n, 1, 1, normThreads(c), dout, x, weight, rstd, residual, dx, c);
        columnSums(dout, x, null, rstd, dweight, null);
        return dx;
    }

    // ---- activations --------------------------------------------------------------------------------------------

    @Override public Tensor geluForward(Tensor x) {
        Tensor out = empty(x.dtype(), x.shape());
        elementwise("gelu_fwd_" + suffix(x), x.numel(), x, out, x.numel());
        return out;
    }

    @Override public Tensor geluBackward(Tensor dout, Tensor x) {
        requireSame(dout, x);
        Tensor dx = empty(x.dtype(), x.shape());
        elementwise("gelu_bwd_" + suffix(x), x.numel(), dout, x, dx, x.numel());
        return dx;
    }

    @Override public Tensor swigluForward(Tensor gate, Tensor up) {
        requireSame(gate, up);
        Tensor out = empty(gate.dtype(), gate.shape());
        elementwise("swiglu_fwd_" + suffix(gate), gate.numel(), gate, up, out, gate.numel());
        return out;
    }

    @Override public Tensor[] swigluBackward(Tensor dout, Tensor gate, Tensor up) {
        requireSame(dout, gate, up);
        Tensor dgate = empty(gate.dtype(), gate.shape()), dup = empty(up.dtype(), up.shape());
        elementwise("swiglu_bwd_" + suffix(gate), gate.numel(), dout, gate, up, dgate, dup, gate.numel());
        return new Tensor[] {dgate, dup};
    }

    // ---- attention ----------------------------------------------------------------------------------------------

    @Override public Tensor rope(Tensor x, Tensor cos, Tensor sin, boolean inverse) {
        requireF32(cos, sin);
        int bt = x.size(0) * x.size(1), t = x.size(1), h = x.size(2), d = x.size(3);
        Tensor out = empty(x.dtype(), x.shape());
        long threads = (long) bt * h * (d % 16 == 0 ? d / 16 : d / 2); // eight pairs a thread where d/2 is a multiple of 8
        elementwise("rope_" + suffix(x), threads, x, cos, sin, out, (long) bt, t, h, d, inverse ? -1f : 1f);
        return out;
    }

    /**
     * bf16 with head size 64 runs on tensor cores (attention_mma.cu: wgmma on Hopper, mma.sync elsewhere); everything
     * else on the reference kernels.
     */
    private static boolean tensorCoreAttention(Tensor q) { return q.dtype() == DType.BF16 && q.size(3) == 64; }

    @Override public AttentionOutput attentionForward(Tensor q, Tensor k, Tensor v, double scale, Tensor starts) {
        requireSame(q, k, v);
        int b = q.size(0), t = q.size(1), h = q.size(2), hkv = k.size(2), d = q.size(3);
        require(d <= 128 && h % hkv == 0, "attention needs head_dim <= 128 and n_heads a multiple of n_kv_heads: " + q + ", " + k);
        requireStarts(starts, b, t);
        Tensor out = empty(q.dtype(), q.shape()), lse = empty(DType.F32, b, h, t);
        if (tensorCoreAttention(q)) { // 128 queries a block
            Object[] args = {q, k, v, out, lse, t, h, hkv, (float) scale, starts};
            if (wgmmaAttention) kernels.launchWith("attention_mma.cu", "attention_wgmma_fwd", h * b, ceil(t, 128), 1, 128, 1, WGMMA_FWD_SHARED, args);
            else kernels.launch("attention_mma.cu", "attention_mma_fwd", h * b, ceil(t, 128), 1, 128, args);
        } else {
            kernels.launch("attention.cu", "attention_fwd_" + suffix(q), t, h, b, 32, q, k, v, out, lse, t, h, hkv, d, (float) scale, starts);
        }
        return new AttentionOutput(out, lse);
    }

    @Override public Tensor[] attentionBackward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, double scale, Tensor starts) {
        requireSame(dout, q, k, v, out);
        int b = q.size(0), t = q.size(1), h = q.size(2), hkv = k.size(2), d = q.size(3);
        requireStarts(starts, b, t);
        Tensor dq = empty(q.dtype(), q.shape()), dk = empty(k.dtype(), k.shape()), dv = empty(v.dtype(), v.shape());
        String sfx = suffix(q);
        try (Tensor delta = empty(DType.F32, b, h, t)) {
            long rows = (long) b * t * h; // eight threads a row
            kernels.launch("attention.cu", "attention_delta_" + sfx, (int) Math.min(ceil(rows * 8, THREADS), (long) multiprocessors * 16), 1, 1, THREADS,
                    dout, out, delta, b, t, h, d);
            if (tensorCoreAttention(q)) {
                // the key blocks add their shares of dq into dqAcc; deterministic, each stores its own part, added up in order after
                long part = deterministic ? q.numel() : 0;
                try (Tensor dqAcc = deterministic ? empty(DType.F32, ceil(t, 64), (int) q.numel()) : zeros(DType.F32, q.shape())) {
                    Object[] args = {dout, q, k, v, lse, delta, dqAcc, dk, dv, t, h, hkv, (float) scale, starts, part};
                    if (wgmmaAttention) kernels.launchWith("attention_mma.cu", "attention_wgmma_bwd", hkv * b, ceil(t, 64), 1, 128, 1, WGMMA_BWD_SHARED, args);
                    else kernels.launch("attention_mma.cu", "attention_mma_bwd", hkv * b, ceil(t, 64), 1, 128, args);
                    if (deterministic) elementwiseIn("attention_mma.cu", "attention_dq_reduce", dq.numel(), dqAcc, dq, dq.numel(), (long) h * d, t, (float) scale);
                    else elementwiseIn("attention_mma.cu", "attention_dq_finish", dq.numel(), dqAcc, dq, dq.numel(), (float) scale);
                }
            } else {
                kernels.launch("attention.cu", "attention_bwd_dq_" + sfx, t, h, b, 32, dout, q, k, v, lse, delta, dq, t, h, hkv, d, (float) scale, starts);
                kernels.launch("attention.cu", "attention_bwd_dkv_" + sfx, t, hkv, b, 32, dout, q, k, v, lse, delta, dk, dv, t, h, hkv, d, (float) scale, starts);
            }
        }
        return new Tensor[] {dq, dk, dv};
    }

    /** Document starts (B,T) int32 on this device, or null. */
    private void requireStarts(Tensor starts, int b, int t) {
        require(starts == null || starts.dtype() == DType.I32 && starts.numel() == (long) b * t && starts.backend() == this,
                "document starts " + starts + " must be (B,T) = (" + b + "," + t + ") int32 on the GPU");
    }

    @Override public Tensor attentionCached(Tensor q, Tensor k, Tensor v, int length, double scale) {
        requireSame(q, k, v);
        int b = q.size(0), tq = q.size(1), h = q.size(2), d = q.size(3), tmax = k.size(1), hkv = k.size(2);
        require(d <= 128 && h % hkv == 0 && tq <= length && length <= tmax && k.size(0) == b && k.size(3) == d,
                "cached attention of " + q + " over " + length + " positions of " + k);
        Tensor out = empty(q.dtype(), q.shape());
        kernels.launch("attention.cu", "attention_cached_" + suffix(q), tq, h, b, 32, q, k, v, out, tq, tmax, length, h, hkv, d, (float) scale);
        return out;
    }

    @Override public void copyIntoPositions(Tensor src, Tensor dst, int at) {
        int b = src.size(0), t = src.size(1), tmax = dst.size(1);
        long row = src.numel() / ((long) b * t) * src.dtype().byteSize(); // bytes of one position
        require(dst.size(0) == b && bytes(dst) == (long) b * tmax * row && at >= 0 && at + t <= tmax && src.dtype() == dst.dtype(),
                "cannot write " + src + " into positions " + at + ".." + (at + t) + " of " + dst);
        Cuda.check(cudart.cudaMemcpy2DAsync(Cuda.at(address(dst) + at * row), tmax * row, Cuda.at(address(src)), t * row, t * row, b,
                cudart.cudaMemcpyDeviceToDevice, stream), "cudaMemcpy2DAsync D2D");
    }

    // ---- loss ---------------------------------------------------------------------------------------------------

    @Override public Tensor crossEntropy(Tensor logits, int classes, Tensor targets, Tensor dlogits, double gradScale) {
        int w = logits.size(-1), n = (int) (logits.numel() / w);
        require(targets.numel() == n, "targets " + targets + " do not match logits " + logits);
        require(classes > 0 && classes <= w, "cross-entropy over " + classes + " classes of logits " + logits);
        require(dlogits == null || dlogits.dtype() == logits.dtype(), "dlogits " + dlogits + " must have the logits' dtype");
        Tensor losses = empty(DType.F32, n);
        kernels.launch("cross_entropy.cu", (w % 8 == 0 ? "cross_entropy8_" : "cross_entropy_") + suffix(logits), n, 1, 1, 1024,
                logits, targets, dlogits, losses, w, classes, (float) gradScale);
        return losses;
    }

    @Override public Tensor crossEntropyStats(Tensor logits, int classes, int firstClass, Tensor targets) {
        int w = logits.size(-1), n = (int) (logits.numel() / w);
        require(targets.numel() == n && classes >= 0 && classes <= w, "cross-entropy stats over " + classes + " classes of logits " + logits);
        Tensor stats = empty(DType.F32, n, 3);
        kernels.launch("cross_entropy.cu", "ce_stats_" + suffix(logits), n, 1, 1, 1024, logits, targets, stats, w, classes, firstClass);
        return stats;
    }

    @Override public Tensor crossEntropyFromStats(Tensor logits, int classes, int firstClass, Tensor targets, Tensor stats, Tensor dlogits,
                                                  double gradScale) {
        int w = logits.size(-1), n = (int) (logits.numel() / w), ranks = (int) (stats.numel() / (3L * n));
        require(stats.numel() == 3L * n * ranks && stats.dtype() == DType.F32 && targets.numel() == n,
                "stats " + stats + " do not hold (R," + n + ",3) f32 for logits " + logits);
        require(dlogits == null || dlogits.dtype() == logits.dtype(), "dlogits " + dlogits + " must have the logits' dtype");
        Tensor losses = empty(DType.F32, n);
        kernels.launch("cross_entropy.cu", "ce_from_stats_" + suffix(logits), n, 1, 1, 1024, logits, targets, stats, dlogits, losses, w, classes,
                firstClass, ranks, n, (float) gradScale);
        return losses;
    }

    // ---- FP8 ----------------------------------------------------------------------------------------------------

    /**
     * Current scaling: two passes over x, the amax of the rotated values, then rotate and quantize at max_fp8 / amax;
     * delayed scaling: one pass, the scale from the history, this amax recorded as it goes. Where x fits fp8.cu's
     * tiles (see {@link #fitsTiles}) one side of the both-operands kernels does it; otherwise the single kernels, for
     * blocks of 32 to 256 (one warp holds a block); without rotation they still walk 128-element chunks. Larger blocks
     * first mix their runs of 128 into an f32 copy of x ({@link #crossHadamard}), whose runs are then rotated.
     */
    @Override public void quantizeFp8(Tensor x, boolean transpose, int hadamardBlock, Fp8Operand out, Tensor amaxHistory, boolean fromHistory) {
        requireQuantizable(x, transpose, hadamardBlock, out, amaxHistory, fromHistory);
        if (fitsTiles(x, hadamardBlock)) {
            Fp8Target side = new Fp8Target(out, hadamardBlock, amaxHistory, fromHistory);
            quantizeTiles(x, transpose ? null : side, transpose ? side : null);
            return;
        }
        require(!out.perRow(), "per-row FP8 scales on the GPU take Hadamard blocks up to " + BOTH_TILE + " and a 16-byte aligned source with sides a multiple of 16");
        if (hadamardBlock > WARP_BLOCK) {
            try (Tensor mixed = crossHadamard(x, transpose, hadamardBlock)) {
                quantizeFp8(mixed, transpose, CROSS_RUN, out, amaxHistory, fromHistory);
            }
            return;
        }
        int r = x.size(0), c = x.size(1), block = hadamardBlock > 1 ? hadamardBlock : 128, e = block / 32;
        String kind = (transpose ? "fp8_cols_" : "fp8_rows_"), types = suffix(x) + "_" + e;
        int rot = hadamardBlock > 1 ? 1 : 0, gx = ceil(c, 32), gy = ceil(r, block), shared = block * 33 * 4;
        long n = x.numel();
        int grid = (int) Math.max(1, Math.min(ceil(ceil(n, block), THREADS / 32), (long) multiprocessors * 16));
        float norm = hadamardNorm(hadamardBlock);
        try (Tensor own = fromHistory ? null : zeros(DType.F32, 1)) {
            if (!fromHistory) { // current scaling: this tensor's amax first
                if (transpose) kernels.launchWith("fp8.cu", kind + "amax_" + types, gx, gy, 1, THREADS, 1, shared, x, r, c, rot, norm, own);
                else kernels.launch("fp8.cu", kind + "amax_" + types, grid, 1, 1, THREADS, x, n, rot, norm, own);
            }
            Object[] scaling = scalingArgs(out, amaxHistory, fromHistory, own == null ? 0 : address(own));
            if (transpose) kernels.launchWith("fp8.cu", kind + "quantize_" + types, gx, gy, 1, THREADS, 1, shared, concat(new Object[] {x, r, c, rot, norm}, scaling));
            else kernels.launch("fp8.cu", kind + "quantize_" + types, grid, 1, 1, THREADS, concat(new Object[] {x, n, rot, norm}, scaling));
        }
    }

    /**
     * One read of x for both operands (fp8.cu's "both" kernels, 128 x 128 tiles) where x fits them (see {@link
     * #fitsTiles}); otherwise the two single kernels.
     */
    @Override public void quantizeFp8Both(Tensor x, Fp8Target rows, Fp8Target cols) {
        requireQuantizable(x, false, rows.hadamardBlock(), rows.out(), rows.amaxHistory(), rows.fromHistory());
        requireQuantizable(x, true, cols.hadamardBlock(), cols.out(), cols.amaxHistory(), cols.fromHistory());
        if (fitsTiles(x, rows.hadamardBlock()) && fitsTiles(x, cols.hadamardBlock())) quantizeTiles(x, rows, cols);
        else Backend.super.quantizeFp8Both(x, rows, cols);
    }

    /** Whether fp8.cu's tile kernels take x: a Hadamard block of at most 128, 16-byte aligned, sides a multiple of 16. */
    private static boolean fitsTiles(Tensor x, int hadamardBlock) {
        return hadamardBlock <= BOTH_TILE && address(x) % 16 == 0 && x.size(0) % 16 == 0 && x.size(1) % 16 == 0;
    }

    /** The tile kernels over x for the row-wise and the transposed operand; a null target is a side not made. */
    private void quantizeTiles(Tensor x, Fp8Target rows, Fp8Target cols) {
        String amaxKernel = "fp8_both_amax_" + suffix(x), quantizeKernel = "fp8_both_quantize_" + suffix(x);
        boolean f32 = x.dtype() == DType.F32;
        int r = x.size(0), c = x.size(1), threads = f32 ? BOTH_F32_THREADS : THREADS, shared = f32 ? BOTH_F32_SHARED : BOTH_SHARED;
        long tiles = (long) ceil(c, BOTH_TILE) * ceil(r, BOTH_TILE);
        boolean vr = rows != null && rows.out().perRow(), vc = cols != null && cols.out().perRow();
        boolean current = rows != null && !rows.fromHistory() || cols != null && !cols.fromHistory();
        int amaxesR = vr ? r : 1; // this tensor's amax, or each row's and each column's
        try (Tensor own = current ? zeros(DType.F32, amaxesR + (vc ? c : 1)) : null) {
            long ownR = current ? address(own) : 0, ownC = ownR + 4L * amaxesR;
            if (current)
                kernels.launchWith("fp8.cu", amaxKernel, persistentGrid(amaxKernel, tiles, threads, shared), 1, 1, threads, 1, shared,
                        concat(new Object[] {x, r, c}, sideArgs(rows, vr), new Object[] {ownR}, sideArgs(cols, vc), new Object[] {ownC}));
            kernels.launchWith("fp8.cu", quantizeKernel, persistentGrid(quantizeKernel, tiles, threads, shared), 1, 1, threads, 1, shared,
                    concat(new Object[] {x, r, c}, sideArgs(rows, vr), scalingArgs(rows, ownR), sideArgs(cols, vc), scalingArgs(cols, ownC)));
        }
    }

    /** A tile side's scaling arguments, all zero for a side not made. */
    private Object[] scalingArgs(Fp8Target side, long ownAmax) {
        return side == null ? new Object[] {0L, 0, 0L, 0f, 0, 0L, 0L} : scalingArgs(side.out(), side.amaxHistory(), side.fromHistory(), ownAmax);
    }

    /** A side's Hadamard block (0: none, -1: the side is not made), its norm and whether it scales per line. */
    private static Object[] sideArgs(Fp8Target side, boolean perLine) {
        int block = side == null ? -1 : side.hadamardBlock() > 1 ? side.hadamardBlock() : 0;
        return new Object[] {block, hadamardNorm(block), perLine ? 1 : 0};
    }

    /** Blocks for a kernel whose blocks walk {@code tiles} work items: as many as are resident on the GPU at once. */
    private int persistentGrid(String kernel, long tiles, int threads, int shared) {
        return (int) Math.min(tiles, (long) multiprocessors * kernels.residentBlocks("fp8.cu", kernel, threads, shared));
    }

    /**
     * Shared memory of the wgmma attention kernels (64 x 64 bf16 tiles and 1 KB to align them): forward Q (two tiles),
     * K and V (two each); backward K, V, Q and dO (two each), dSᵀ, and lse and delta for two query tiles.
     */
    private static final int WGMMA_FWD_SHARED = 6 * 64 * 64 * 2 + 1024, WGMMA_BWD_SHARED = 7 * 64 * 64 * 2 + 6 * 64 * 4 + 1024;
    /**
     * fp8.cu's both kernels: two bf16 tiles with rows of 136 elements, and 16 lines of 144 bytes of codes a warp; for
     * an f32 source, blocks of 512 threads and four such tiles (two of hi and lo).
     */
    private static final int BOTH_TILE = 128, BOTH_SHARED = 2 * BOTH_TILE * 136 * 2 + THREADS / 32 * 16 * 144, BOTH_F32_THREADS = 512,
            BOTH_F32_SHARED = 4 * BOTH_TILE * 136 * 2 + BOTH_F32_THREADS / 32 * 16 * 144, MAX_GRID_Y = 65535;
    private static final int WARP_BLOCK = 256, CROSS_RUN = 128, CROSS_MAX = 64, MAX_BLOCK = CROSS_RUN * CROSS_MAX * CROSS_MAX;

    /**
     * x (R,C) times H_M (x) I_128 along the contracted dimension (C, or R when overRows) in every block of
     * {@code block} = M·128, into a new f32 tensor: the part of H_block that mixes runs of 128, up to 64 runs a pass.
     */
    private Tensor crossHadamard(Tensor x, boolean overRows, int block) {
        int r = x.size(0), c = x.size(1);
        Tensor y = empty(DType.F32, r, c), src = x;
        for (int s = CROSS_RUN; s < block; s *= Math.min(block / s, CROSS_MAX)) {
            int m = Math.min(block / s, CROSS_MAX);
            kernels.launch("fp8.cu", "fp8_cross_hadamard_" + suffix(src) + "_" + m, ceil((long) r * c / m, THREADS), 1, 1, THREADS,
                    src, y, r, c, overRows ? 1 : 0, s, hadamardNorm(m));
            src = y;
        }
        return y;
    }

    private void requireQuantizable(Tensor x, boolean transpose, int hadamardBlock, Fp8Operand out, Tensor amaxHistory, boolean fromHistory) {
        requireFp8TensorCores();
        DType format = out.data().dtype();
        require(format == DType.FP8_E4M3 || format == DType.FP8_E5M2, "the CUDA backend quantizes to fp8_e4m3 or fp8_e5m2, not " + format);
        require(x.rank() == 2 && floatOrBf16(x), "quantizeFp8 takes a 2-D f32 or bf16 tensor, got " + x);
        int r = x.size(0), c = x.size(1), k = transpose ? r : c;
        require(hadamardBlock <= 1 || (Integer.bitCount(hadamardBlock) == 1 && hadamardBlock >= 32 && hadamardBlock <= MAX_BLOCK && k % hadamardBlock == 0),
                "hadamard block " + hadamardBlock + " must be a power of two from 32 to " + MAX_BLOCK + " on the GPU, dividing the contracted dimension " + k);
        require(out.data().size(0) == (transpose ? c : r) && out.data().size(1) == k, "quantizeFp8 output " + out.data() + " does not fit " + x);
        require(amaxHistory == null ? !fromHistory : amaxHistory.dtype() == DType.F32 && amaxHistory.numel() >= (fromHistory ? 2 : 1),
                "delayed scaling needs an amax history, f32 with at least 2 slots; got " + amaxHistory);
        require(out.scaleInv().dtype() == DType.F32, "FP8 scales on the GPU are f32, not " + out.scaleInv());
        require(!(fromHistory && out.perRow()), "per-row FP8 scales come from each row's own amax, not from an amax history");
    }

    private static float hadamardNorm(int block) { return block > 1 ? (float) (1 / Math.sqrt(block)) : 1f; }

    /**
     * The quantize kernels' scaling arguments: the amax source and its count (the history's earlier steps, or this
     * tensor's own amax at {@code ownAmax}), where to record this amax, the format's max and kind, the outputs.
     */
    private Object[] scalingArgs(Fp8Operand out, Tensor amaxHistory, boolean fromHistory, long ownAmax) {
        DType format = out.data().dtype();
        long src = fromHistory ? address(amaxHistory) + 4 : ownAmax, record = amaxHistory == null ? 0 : address(amaxHistory);
        int count = fromHistory ? (int) amaxHistory.numel() - 1 : 1;
        return new Object[] {src, count, record, (float) Fp8.of(format).max(), format == DType.FP8_E5M2 ? 1 : 0, out.data(), out.scaleInv()};
    }

    /** Kernel arguments in the order of the parts. */
    private static Object[] concat(Object[]... parts) { return Arrays.stream(parts).flatMap(Arrays::stream).toArray(); }

    @Override public void rollAmaxHistories(List<Tensor> histories) {
        List<Slot> slots = new ArrayList<>();
        for (Tensor h : histories) {
            requireF32(h);
            slots.add(new Slot(h, null, null, null, 0, null, 0));
        }
        if (slots.isEmpty()) return;
        kernels.launch("fp8.cu", "fp8_roll_histories", ceil(32 * slots.size(), THREADS), 1, 1, THREADS, slotTable(slots).slots(), slots.size());
    }

    /**
     * cuBLASLt's FP8 GEMM (K contiguous in both operands, the "TN" layout it requires), f32 accumulation; fast
     * accumulation only for e4m3 x e4m3 products (the forward GEMM), as Transformer Engine does, since gradients in
     * e5m2 lose more to it.
     */
    @Override public void matmulFp8(Fp8Operand a, Fp8Operand b, Tensor c, double beta) {
        Tensor ad = a.data(), bd = b.data();
        int m = ad.size(0), k = ad.size(1), n = bd.size(0);
        require(bd.size(1) == k && c.size(0) == m && c.size(1) == n, "matmulFp8 shapes do not agree: " + ad + " @ " + bd + "ᵀ -> " + c);
        require(isFp8(ad) && isFp8(bd) && !(ad.dtype() == DType.FP8_E5M2 && bd.dtype() == DType.FP8_E5M2),
                "FP8 GEMMs take fp8 operands, at most one of them e5m2: " + ad + ", " + bd);
        require(m % 16 == 0 && n % 16 == 0 && k % 16 == 0, "FP8 GEMMs need every dimension a multiple of 16, got " + m + "x" + n + "x" + k);
        require(floatOrBf16(c), "matmulFp8 writes f32 or bf16, not " + c);
        boolean rowScales = a.perRow();
        require(b.perRow() == rowScales && a.scaleInv().dtype() == DType.F32 && b.scaleInv().dtype() == DType.F32,
                "an FP8 GEMM scales both operands per tensor or both per row, in f32: " + a.scaleInv() + ", " + b.scaleInv());
        boolean fast = ad.dtype() == DType.FP8_E4M3 && bd.dtype() == DType.FP8_E4M3;
        int aType = cudaType(ad.dtype()), bType = cudaType(bd.dtype()), cType = cudaType(c.dtype());
        String name = "gemm-fp8 " + m + "x" + n + "x" + k + " " + c.dtype().configName();
        if (!rowScales || gemm.scalesRows(aType, bType, cType, m, n, k, fast)) {
            timer.time(name + (rowScales ? " rowwise" : ""), () -> gemm.matmulFp8(address(ad), aType, address(a.scaleInv()), address(bd), bType,
                    address(b.scaleInv()), address(c), cType, m, n, k, (float) beta, fast, rowScales));
            return;
        }
        try (Tensor product = empty(DType.F32, m, n)) {
            long one = address(unitScale);
            timer.time(name, () -> gemm.matmulFp8(address(ad), aType, one, address(bd), bType, one, address(product), cudaType(DType.F32),
                    m, n, k, 0f, fast, false));
            kernels.launch("fp8.cu", "fp8_outer_scale_" + c.dtype().configName(), ceil(n / 8, THREADS), Math.min(m, MAX_GRID_Y), 1, THREADS,
                    product, a.scaleInv(), b.scaleInv(), m, n, (float) beta, c);
        }
    }

    /** FP8 is refused, not emulated, on GPUs without FP8 tensor cores: silent fallbacks hide a slow run. */
    private void requireFp8TensorCores() {
        if (computeCapability < 89)
            throw new UnsupportedOperationException("FP8 needs the tensor cores of compute capability 8.9 or newer (Ada, Hopper); " + name
                    + " is sm_" + computeCapability + ": set precision.linear = bf16");
    }

    private static boolean isFp8(Tensor t) { return t.dtype() == DType.FP8_E4M3 || t.dtype() == DType.FP8_E5M2; }

    // ---- optimizer ----------------------------------------------------------------------------------------------

    @Override public void adamw(List<AdamWSlot> slots, AdamWSettings st, Tensor schedule, Tensor gradSumSquares) {
        require(schedule.dtype() == DType.F64 && schedule.numel() == 3 && gradSumSquares.dtype() == DType.F64,
                "adamw reads an f64 schedule [3] and an f64 sum of squares, not " + schedule + ", " + gradSumSquares);
        List<Slot> table = new ArrayList<>();
        for (AdamWSlot a : slots) {
            requireF32(a.param(), a.grad(), a.m(), a.v());
            require(a.copy() == null || a.copy().dtype() == DType.BF16 && a.copy().numel() == a.param().numel(),
                    "adamw writes a bf16 copy of " + a.param() + ", not " + a.copy());
            require(a.param().numel() == a.grad().numel(), "adamw slot tensors differ in size: " + a);
            require(at(a.m(), a.stateAt()) % 16 == 0 && at(a.v(), a.stateAt()) % 16 == 0, "adamw reads moments 16 bytes at a time: element " + a.stateAt()
                    + " of " + a.m() + " is not on a 16-byte boundary");
            table.add(new Slot(a.param(), a.grad(), a.m(), a.v(), a.stateAt(), a.copy(), a.weightDecay()));
        }
        SlotTable t = slotTable(table);
        if (t.chunkCount() == 0) return;
        kernels.launch("optimizer.cu", "multi_adamw", (int) t.chunkCount(), 1, 1, THREADS, t.slots(), t.chunks(), (float) st.beta1(),
                (float) st.beta2(), (float) st.eps(), schedule, gradSumSquares, (float) st.maxGradNorm());
    }

    /** One tensor of a multi-tensor op (common.cuh's Slot): p is read or updated; g, m, v, copy may be null. */
    private record Slot(Tensor p, Tensor g, Tensor m, Tensor v, long stateAt, Tensor copy, double weightDecay) {}

    private static final int SLOT_WORDS = 7; // common.cuh's Slot, in 8-byte words

    /** A slot table on the device: the slots' words, then the chunk list that hands CHUNK elements to a block. */
    private record SlotTable(Tensor memory, int slotCount, long chunkCount) {
        long slots() { return address(memory); }

        long chunks() { return address(memory) + 8L * SLOT_WORDS * slotCount; }
    }

    private static final int CHUNK = 32768; // optimizer.cu's CHUNK

    /**
     * The device table of these slots, made on first use and kept: a training step passes the same tensors every
     * time, and a captured step must not upload anything.
     */
    private SlotTable slotTable(List<Slot> slots) {
        List<Long> words = new ArrayList<>();
        for (Slot s : slots)
            for (long w : new long[] {address(s.p()), addressOrZero(s.g()), at(s.m(), s.stateAt()), at(s.v(), s.stateAt()),
                    addressOrZero(s.copy()), s.p().numel(), Double.doubleToRawLongBits(s.weightDecay())}) words.add(w);
        return slotTables.computeIfAbsent(words, w -> {
            List<Long> chunks = new ArrayList<>();
            for (int i = 0; i < slots.size(); i++)
                for (long c = 0; c * CHUNK < slots.get(i).p().numel(); c++) chunks.add((long) i << 32 | c);
            long[] all = new long[w.size() + chunks.size()];
            for (int i = 0; i < w.size(); i++) all[i] = w.get(i);
            for (int i = 0; i < chunks.size(); i++) all[w.size() + i] = chunks.get(i);
            Tensor memory = empty(DType.I64, all.length);
            try (LongPointer host = new LongPointer(all)) {
                upload(host, memory);
            }
            return new SlotTable(memory, slots.size(), chunks.size());
        });
    }

    private static long addressOrZero(Tensor t) { return t == null ? 0 : address(t); }

    /** The address of element i of t (0 for no tensor). */
    private static long at(Tensor t, long i) { return t == null ? 0 : address(t) + i * t.dtype().byteSize(); }

    // ---- graphs -------------------------------------------------------------------------------------------------

    /**
     * Captures what work enqueues on the stream as a CUDA graph. Cached free blocks go back to the driver first, so
     * the graph's own memory does not come on top of what an eager run of the same work left cached.
     */
    @Override public Graph capture(Runnable work) {
        allocator.emptyCache();
        allocator.beginCapture();
        CUgraph_st graph = new CUgraph_st();
        boolean made = false;
        try {
            Cuda.check(cudart.cudaStreamBeginCapture(stream, cudart.cudaStreamCaptureModeRelaxed), "cudaStreamBeginCapture");
            try {
                work.run();
            } catch (RuntimeException | Error e) {
                cudart.cudaStreamEndCapture(stream, graph);
                cudart.cudaGetLastError();
                if (!graph.isNull()) cudart.cudaGraphDestroy(graph);
                throw e;
            }
            Cuda.check(cudart.cudaStreamEndCapture(stream, graph), "cudaStreamEndCapture (an op in the captured work waited for the device?)");
            CUgraphExec_st exec = new CUgraphExec_st();
            Cuda.check(cudart.cudaGraphInstantiate(exec, graph, 0L), "cudaGraphInstantiate");
            made = true;
            return new Graph() {
                private boolean closed;

                @Override public void replay() { Cuda.check(cudart.cudaGraphLaunch(exec, stream), "cudaGraphLaunch"); }

                @Override public void close() {
                    if (closed) return;
                    closed = true;
                    synchronize();
                    cudart.cudaGraphExecDestroy(exec);
                    cudart.cudaGraphDestroy(graph);
                    allocator.graphClosed();
                }
            };
        } finally {
            allocator.endCapture(made);
        }
    }

    // ---- events and asynchronous host transfers -----------------------------------------------------------------

    /** A CUDA event recorded on a stream; closing it destroys it. */
    private static final class CudaEvent implements Event {
        private final CUevent_st event = new CUevent_st();
        private boolean destroyed;

        CudaEvent(CUstream_st on) {
            Cuda.check(cudart.cudaEventCreateWithFlags(event, cudart.cudaEventDisableTiming), "cudaEventCreateWithFlags");
            Cuda.check(cudart.cudaEventRecord(event, on), "cudaEventRecord");
        }

        @Override public void await() { Cuda.check(cudart.cudaEventSynchronize(event), "cudaEventSynchronize"); }

        @Override public boolean done() { return cudart.cudaEventQuery(event) == cudart.cudaSuccess; }

        @Override public void close() {
            if (destroyed) return;
            destroyed = true;
            cudart.cudaEventDestroy(event);
        }
    }

    /** Page-locked host memory: copies to and from it run asynchronously at the link's full speed. */
    @Override public HostBuffer hostBuffer(long bytes) {
        Pointer p = new Pointer();
        Cuda.check(cudart.cudaHostAlloc(p, bytes, cudart.cudaHostAllocDefault), "cudaHostAlloc(" + bytes + " bytes)");
        java.nio.ByteBuffer b = new BytePointer(p).capacity(bytes).asByteBuffer().order(java.nio.ByteOrder.LITTLE_ENDIAN);
        return new HostBuffer() {
            private boolean freed;

            @Override public java.nio.ByteBuffer bytes() { return b; }

            @Override public void close() {
                if (freed) return;
                freed = true;
                cudart.cudaFreeHost(p);
            }
        };
    }

    /**
     * cuFile where the machine has GPUDirect Storage (the nvidia-fs driver), or in its compatibility mode too when
     * always; else the staging the caller does is as good: null.
     */
    @Override public FileIo fileIo(boolean always) { return CuFile.open(device.index(), always); }

    @Override public void deterministic(boolean on) { deterministic = on; }

    @Override public Event record() { return new CudaEvent(stream); }

    @Override public void waitFor(Event e) {
        if (e instanceof CudaEvent c) Cuda.check(cudart.cudaStreamWaitEvent(stream, c.event, 0), "cudaStreamWaitEvent");
        else e.await();
    }

    @Override public Event copyToHost(Tensor t, HostBuffer host) { return copyOnSide(t, t.numel(), host, true, null); }

    @Override public Event copyFromHost(HostBuffer host, Tensor t) { return copyOnSide(t, t.numel(), host, false, null); }

    @Override public Event copyToHostAfter(Tensor t, long elements, HostBuffer host, Event after) { return copyOnSide(t, elements, host, true, after); }

    @Override public Event copyFromHostAfter(HostBuffer host, Tensor t, long elements, Event after) { return copyOnSide(t, elements, host, false, after); }

    /** A copy of t's first elements on its direction's stream, after the event given, or (null) after the compute stream's work so far. */
    private Event copyOnSide(Tensor t, long elements, HostBuffer host, boolean toHost, Event after) {
        long bytes = elements * t.dtype().byteSize();
        require(elements >= 0 && elements <= t.numel(), "cannot copy " + elements + " elements of " + t);
        require(host.bytes().capacity() >= bytes, elements + " elements of " + t + " do not fit in a host buffer of " + host.bytes().capacity() + " bytes");
        CUstream_st side = toHost ? toHostStream : fromHostStream;
        if (side == null) {
            side = new CUstream_st();
            Cuda.check(cudart.cudaStreamCreateWithFlags(side, cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
            if (toHost) toHostStream = side;
            else fromHostStream = side;
        }
        if (after == null) {
            try (CudaEvent ready = new CudaEvent(stream)) {
                Cuda.check(cudart.cudaStreamWaitEvent(side, ready.event, 0), "cudaStreamWaitEvent");
            }
        } else if (after instanceof CudaEvent c) {
            Cuda.check(cudart.cudaStreamWaitEvent(side, c.event, 0), "cudaStreamWaitEvent");
        } else {
            after.await();
        }
        Pointer h = new BytePointer(host.bytes()), d = Cuda.at(address(t));
        Cuda.check(cudart.cudaMemcpyAsync(toHost ? h : d, toHost ? d : h, bytes,
                toHost ? cudart.cudaMemcpyDeviceToHost : cudart.cudaMemcpyHostToDevice, side), "cudaMemcpyAsync on a copy stream");
        return new CudaEvent(side);
    }

    @Override public void close() {
        synchronize();
        for (CUstream_st side : new CUstream_st[] {toHostStream, fromHostStream})
            if (side != null) {
                Cuda.check(cudart.cudaStreamSynchronize(side), "cudaStreamSynchronize");
                cudart.cudaStreamDestroy(side);
            }
        unitScale.close();
        gemm.close();
        timer.close();
        for (SlotTable t : slotTables.values()) t.memory().close();
        allocator.emptyCache();
        cudart.cudaStreamDestroy(stream);
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    private void elementwise(String name, long n, Object... args) { elementwiseIn("elementwise.cu", name, n, args); }

    /** A grid-stride kernel over n elements. */
    private void elementwiseIn(String file, String name, long n, Object... args) {
        int grid = (int) Math.max(1, Math.min(ceil(n, THREADS), (long) multiprocessors * 16));
        kernels.launch(file, name, grid, 1, 1, THREADS, args);
    }

    /** The kernel-name suffix of an activation dtype. */
    private static String suffix(Tensor t) {
        return switch (t.dtype()) {
            case F32 -> "f32";
            case BF16 -> "bf16";
            default -> throw new UnsupportedOperationException("the CUDA backend computes in f32 or bf16, got " + t);
        };
    }

    private static boolean floatOrBf16(Tensor t) { return t.dtype() == DType.F32 || t.dtype() == DType.BF16; }

    private static int cudaType(DType d) {
        return switch (d) {
            case BF16 -> cudart.CUDA_R_16BF;
            case FP8_E4M3 -> cudart.CUDA_R_8F_E4M3;
            case FP8_E5M2 -> cudart.CUDA_R_8F_E5M2;
            default -> cudart.CUDA_R_32F;
        };
    }

    /** A norm backward's residual, when given, is another tensor like x. */
    private static void requireResidual(Tensor residual, Tensor x) {
        if (residual == null) return;
        requireSame(residual, x);
        require(residual.numel() == x.numel(), "residual " + residual + " does not match " + x);
    }

    private static void requireSame(Tensor... ts) {
        for (Tensor t : ts)
            if (t.dtype() != ts[0].dtype()) throw new IllegalArgumentException("dtypes differ: " + java.util.Arrays.toString(ts));
    }

    private static int rowThreads(int c) { return Math.min(1024, Math.max(32, (c + 31) / 32 * 32)); }

    /** The norms' kernels take rows whose length is a multiple of 8 as vectors of eight, a thread each. */
    private static int normThreads(int c) { return rowThreads(c % 8 == 0 ? c / 8 : c); }

    /** out (C) += the column sums of partials (chunks, C), in a fixed order. */
    private void addColumnSums(Tensor partials, Tensor out) {
        int chunks = partials.size(0), c = partials.size(1);
        kernels.launch2d("reduce.cu", "column_sum_acc", ceil(c, 32), 1, 1, 32, 32, partials, chunks, c, out);
    }

    /** Whether a norm's block spans a row as vectors of eight, so its backward can sum weight gradients as it goes. */
    private static boolean spansRow(int c) { return c % 8 == 0 && c / 8 <= 1024; }

    /**
     * A norm's backward kernel over chunks of 16 rows ({@link #spansRow}): its arguments up to dx, then one partial
     * sum (chunks, C) per gradient (null for a frozen parameter), summed here into the gradients in chunk order.
     */
    private void backwardInChunks(String kernel, Object[] rowArgs, int n, int c, Tensor... grads) {
        int rows = 16, chunks = ceil(n, rows);
        Tensor[] partials = new Tensor[grads.length];
        try {
            for (int i = 0; i < grads.length; i++)
                if (grads[i] != null) {
                    requireF32(grads[i]);
                    partials[i] = empty(DType.F32, chunks, c);
                }
            kernels.launch("norms.cu", kernel, chunks, 1, 1, normThreads(c), concat(rowArgs, partials, new Object[] {(long) n, c, rows}));
            for (int i = 0; i < grads.length; i++)
                if (grads[i] != null) addColumnSums(partials[i], grads[i]);
        } finally {
            for (Tensor p : partials) if (p != null) p.close();
        }
    }

    private static int ceil(long n, int d) { return (int) ((n + d - 1) / d); }

    private static long bytes(Tensor t) { return t.numel() * t.dtype().byteSize(); }

    /** Parameters, gradients, optimizer state and their tables are f32 on the GPU. */
    private static void requireF32(Tensor... ts) {
        for (Tensor t : ts)
            if (t.dtype() != DType.F32) throw new IllegalArgumentException("expected an f32 parameter tensor, got " + t);
    }

    private static void require(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(message);
    }
}
