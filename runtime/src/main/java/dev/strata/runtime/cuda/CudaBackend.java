package dev.strata.runtime.cuda;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Device;
import dev.strata.runtime.Tensor;
import java.util.Arrays;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.cudart.cudaDeviceProp;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Pointer;

/**
 * The CUDA backend: one device, one stream. F32 tensors for now (BF16 mixed precision comes next); every op is a
 * kernel of the {@code .cu} resources or a cuBLASLt GEMM, all enqueued on the stream; only host transfers wait.
 */
public final class CudaBackend implements Backend {
    /** Device memory behind a tensor: its address and the bytes asked for. */
    record DeviceBuffer(long address, long bytes) {}

    private static final int THREADS = 256;

    private final Device device;
    private final CUstream_st stream = new CUstream_st();
    private final DeviceAllocator allocator = new DeviceAllocator();
    private final Kernels kernels;
    private final CublasLtGemm gemm;
    private final int multiprocessors;
    private final String name;

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
        this.device = Device.cuda(index);
        Cuda.check(cudart.cudaStreamCreateWithFlags(stream, cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
        this.kernels = new Kernels(prop.major(), prop.minor(), stream);
        this.gemm = new CublasLtGemm(stream, allocator);
    }

    /** Opens device {@code index}; fails with what was looked for when there is no driver, library or GPU. */
    public static CudaBackend open(int index) { return new CudaBackend(index); }

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

    public DeviceAllocator allocator() { return allocator; }

    public void synchronize() { Cuda.check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize"); }

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

    private Tensor empty(DType dtype, int... shape) {
        if (dtype != DType.F32 && dtype != DType.I32 && dtype != DType.F64)
            throw new UnsupportedOperationException("the CUDA backend holds f32 and i32 tensors so far, not " + dtype.configName());
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
            case I32 -> {
                int[] ints = toInts(t);
                for (int i = 0; i < n; i++) out[i] = ints[i];
            }
            default -> throw new UnsupportedOperationException("toDoubles of " + t);
        }
        return out;
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
        require(src.dtype() == dst.dtype(), "dtype conversion on the GPU is not implemented yet: " + src + " -> " + dst);
        Cuda.check(cudart.cudaMemcpyAsync(Cuda.at(address(dst)), Cuda.at(address(src)), bytes(src), cudart.cudaMemcpyDeviceToDevice, stream),
                "cudaMemcpyAsync D2D");
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
        require(a.rank() == 2 && b.rank() == 2 && c.rank() == 2, "matmul needs 2-D tensors: " + a + ", " + b + ", " + c);
        int m = transA ? a.size(1) : a.size(0), k = transA ? a.size(0) : a.size(1);
        int kb = transB ? b.size(1) : b.size(0), n = transB ? b.size(0) : b.size(1);
        require(k == kb && c.size(0) == m && c.size(1) == n,
                "matmul shapes do not agree: " + a + (transA ? "ᵀ" : "") + " @ " + b + (transB ? "ᵀ" : "") + " -> " + c);
        requireF32(a, b, c);
        if (k == 0) {
            scale(c, beta);
            return;
        }
        gemm.matmul(address(a), transA, address(b), transB, address(c), m, n, k, (float) alpha, (float) beta,
                cudart.CUDA_R_32F, cublas.CUBLAS_COMPUTE_32F);
    }

    @Override public void addBias(Tensor x, Tensor bias) {
        requireF32(x, bias);
        elementwise("add_bias_f32", x.numel(), x, bias, x.numel(), bias.size(0));
    }

    @Override public void sumRowsAccumulate(Tensor dy, Tensor dbias) {
        requireF32(dy, dbias);
        int c = dbias.size(0);
        kernels.launch("reduce.cu", "sum_rows_acc_f32", ceil(c, THREADS), 1, 1, THREADS, dy, dbias, dy.numel() / c, c);
    }

    @Override public Tensor add(Tensor a, Tensor b) {
        requireF32(a, b);
        Tensor out = empty(a.dtype(), a.shape());
        elementwise("add_f32", a.numel(), a, b, out, a.numel());
        return out;
    }

    @Override public void addInPlace(Tensor acc, Tensor x) {
        requireF32(acc, x);
        require(acc.numel() == x.numel(), "element counts differ: " + acc + " vs " + x);
        elementwise("add_inplace_f32", acc.numel(), acc, x, acc.numel());
    }

    @Override public void scale(Tensor t, double s) {
        requireF32(t);
        elementwise("scale_f32", t.numel(), t, (float) s, t.numel());
    }

    @Override public double sumOfSquares(Iterable<Tensor> tensors) {
        int blocks = multiprocessors * 2;
        try (Tensor partials = zeros(DType.F64, blocks); Tensor out = zeros(DType.F64, 1)) {
            for (Tensor t : tensors) {
                requireF32(t);
                kernels.launch("reduce.cu", "sum_squares_partial_f32", blocks, 1, 1, THREADS, t, t.numel(), partials);
            }
            kernels.launch("reduce.cu", "sum_partials", 1, 1, 1, 32, partials, blocks, out);
            return toDoubles(out)[0];
        }
    }

    // ---- embedding ----------------------------------------------------------------------------------------------

    @Override public Tensor embeddingForward(Tensor ids, Tensor table) {
        int n = (int) ids.numel(), c = table.size(1);
        Tensor out = empty(table.dtype(), n, c);
        elementwise("embedding_fwd_f32", (long) n * c, ids, table, out, (long) n, c);
        return out;
    }

    @Override public void embeddingBackward(Tensor ids, Tensor dout, Tensor dtable) {
        int n = (int) ids.numel(), c = dtable.size(1);
        elementwise("embedding_bwd_f32", (long) n * c, ids, dout, dtable, (long) n, c);
    }

    // ---- normalisation ------------------------------------------------------------------------------------------

    @Override public NormOutput layerNormForward(Tensor x, Tensor weight, Tensor bias, double eps) {
        requireF32(x, weight, bias);
        int c = x.size(-1), n = (int) (x.numel() / c);
        Tensor out = empty(DType.F32, x.shape()), mean = empty(DType.F32, n), rstd = empty(DType.F32, n);
        kernels.launch("norms.cu", "layernorm_fwd_f32", n, 1, 1, rowThreads(c), x, weight, bias, out, mean, rstd, c, (float) eps);
        return new NormOutput(out, mean, rstd);
    }

    @Override public Tensor layerNormBackward(Tensor dout, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dweight, Tensor dbias) {
        int c = x.size(-1), n = (int) (x.numel() / c);
        Tensor dx = empty(DType.F32, x.shape());
        kernels.launch("norms.cu", "layernorm_bwd_f32", n, 1, 1, rowThreads(c), dout, x, weight, mean, rstd, dx, c);
        kernels.launch("norms.cu", "norm_weight_grad_f32", ceil(c, THREADS), 1, 1, THREADS, dout, x, mean, rstd, dweight, dbias, (long) n, c);
        return dx;
    }

    @Override public NormOutput rmsNormForward(Tensor x, Tensor weight, double eps) {
        requireF32(x, weight);
        int c = x.size(-1), n = (int) (x.numel() / c);
        Tensor out = empty(DType.F32, x.shape()), rstd = empty(DType.F32, n);
        kernels.launch("norms.cu", "rmsnorm_fwd_f32", n, 1, 1, rowThreads(c), x, weight, out, rstd, c, (float) eps);
        return new NormOutput(out, null, rstd);
    }

    @Override public Tensor rmsNormBackward(Tensor dout, Tensor x, Tensor weight, Tensor rstd, Tensor dweight) {
        int c = x.size(-1), n = (int) (x.numel() / c);
        Tensor dx = empty(DType.F32, x.shape());
        kernels.launch("norms.cu", "rmsnorm_bwd_f32", n, 1, 1, rowThreads(c), dout, x, weight, rstd, dx, c);
        kernels.launch("norms.cu", "norm_weight_grad_f32", ceil(c, THREADS), 1, 1, THREADS, dout, x, null, rstd, dweight, null, (long) n, c);
        return dx;
    }

    // ---- activations --------------------------------------------------------------------------------------------

    @Override public Tensor geluForward(Tensor x) {
        requireF32(x);
        Tensor out = empty(DType.F32, x.shape());
        elementwise("gelu_fwd_f32", x.numel(), x, out, x.numel());
        return out;
    }

    @Override public Tensor geluBackward(Tensor dout, Tensor x) {
        Tensor dx = empty(DType.F32, x.shape());
        elementwise("gelu_bwd_f32", x.numel(), dout, x, dx, x.numel());
        return dx;
    }

    @Override public Tensor swigluForward(Tensor gate, Tensor up) {
        requireF32(gate, up);
        Tensor out = empty(DType.F32, gate.shape());
        elementwise("swiglu_fwd_f32", gate.numel(), gate, up, out, gate.numel());
        return out;
    }

    @Override public Tensor[] swigluBackward(Tensor dout, Tensor gate, Tensor up) {
        Tensor dgate = empty(DType.F32, gate.shape()), dup = empty(DType.F32, up.shape());
        elementwise("swiglu_bwd_f32", gate.numel(), dout, gate, up, dgate, dup, gate.numel());
        return new Tensor[] {dgate, dup};
    }

    // ---- attention ----------------------------------------------------------------------------------------------

    @Override public Tensor rope(Tensor x, Tensor cos, Tensor sin, boolean inverse) {
        requireF32(x, cos, sin);
        int bt = x.size(0) * x.size(1), t = x.size(1), h = x.size(2), d = x.size(3);
        Tensor out = empty(DType.F32, x.shape());
        elementwise("rope_f32", (long) bt * h * d / 2, x, cos, sin, out, (long) bt, t, h, d, inverse ? -1f : 1f);
        return out;
    }

    @Override public AttentionOutput attentionForward(Tensor q, Tensor k, Tensor v, double scale) {
        requireF32(q, k, v);
        int b = q.size(0), t = q.size(1), h = q.size(2), hkv = k.size(2), d = q.size(3);
        require(d <= 128 && h % hkv == 0, "attention needs head_dim <= 128 and n_heads a multiple of n_kv_heads: " + q + ", " + k);
        Tensor out = empty(DType.F32, q.shape()), lse = empty(DType.F32, b, h, t);
        kernels.launch("attention.cu", "attention_fwd_f32", t, h, b, 32, q, k, v, out, lse, t, h, hkv, d, (float) scale);
        return new AttentionOutput(out, lse);
    }

    @Override public Tensor[] attentionBackward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, double scale) {
        int b = q.size(0), t = q.size(1), h = q.size(2), hkv = k.size(2), d = q.size(3);
        Tensor dq = empty(DType.F32, q.shape()), dk = empty(DType.F32, k.shape()), dv = empty(DType.F32, v.shape());
        try (Tensor delta = empty(DType.F32, b, h, t)) {
            kernels.launch("attention.cu", "attention_delta_f32", t, h, b, 32, dout, out, delta, t, h, d);
            kernels.launch("attention.cu", "attention_bwd_dq_f32", t, h, b, 32, dout, q, k, v, lse, delta, dq, t, h, hkv, d, (float) scale);
            kernels.launch("attention.cu", "attention_bwd_dkv_f32", t, hkv, b, 32, dout, q, k, v, lse, delta, dk, dv, t, h, hkv, d, (float) scale);
        }
        return new Tensor[] {dq, dk, dv};
    }

    // ---- loss ---------------------------------------------------------------------------------------------------

    @Override public Tensor crossEntropy(Tensor logits, Tensor targets, Tensor dlogits, double gradScale) {
        requireF32(logits);
        int v = logits.size(-1), n = (int) (logits.numel() / v);
        require(targets.numel() == n, "targets " + targets + " do not match logits " + logits);
        Tensor losses = empty(DType.F32, n);
        kernels.launch("cross_entropy.cu", "cross_entropy_f32", n, 1, 1, 1024, logits, targets, dlogits, losses, v, (float) gradScale);
        return losses;
    }

    // ---- optimizer ----------------------------------------------------------------------------------------------

    @Override public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep hp, double gradScale) {
        requireF32(param, grad, m, v);
        double bc1 = 1 - Math.pow(hp.beta1(), hp.step()), bc2Sqrt = Math.sqrt(1 - Math.pow(hp.beta2(), hp.step()));
        elementwise("adamw_f32", param.numel(), param, grad, m, v, param.numel(), (float) hp.lr(), (float) hp.beta1(),
                (float) hp.beta2(), (float) hp.eps(), (float) hp.weightDecay(), (float) bc1, (float) bc2Sqrt, (float) gradScale);
    }

    @Override public void close() {
        synchronize();
        gemm.close();
        allocator.emptyCache();
        cudart.cudaStreamDestroy(stream);
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    private void elementwise(String name, long n, Object... args) {
        int grid = (int) Math.max(1, Math.min(ceil(n, THREADS), (long) multiprocessors * 16));
        kernels.launch("elementwise.cu", name, grid, 1, 1, THREADS, args);
    }

    private static int rowThreads(int c) { return Math.min(1024, Math.max(32, (c + 31) / 32 * 32)); }

    private static int ceil(long n, int d) { return (int) ((n + d - 1) / d); }

    private static long bytes(Tensor t) { return t.numel() * t.dtype().byteSize(); }

    private static void requireF32(Tensor... ts) {
        for (Tensor t : ts)
            if (t.dtype() != DType.F32) throw new UnsupportedOperationException("the CUDA backend computes in f32 so far, got " + t);
    }

    private static void require(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(message);
    }
}
