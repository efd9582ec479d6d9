// Element-wise ops on activations of type T (f32 or bf16) with f32 parameters; arithmetic in f32. Grid-stride
// loops over vectors of eight elements (map1, map2 in common.cuh), one element at a time where vectors do not fit.
#include "common.cuh"

template <typename T> __device__ void add(const T* a, const T* b, T* out, long n) {
    map2(a, b, out, n, [](float x, float y) { return x + y; });
}
#define ADD(T, S) extern "C" __global__ void add_##S(const T* a, const T* b, T* out, long n) { add<T>(a, b, out, n); }
FOR_TYPES(ADD)

template <typename T> __device__ void add_inplace(T* acc, const T* x, long n) {
    map2<T>(acc, x, acc, n, [](float s, float y) { return s + y; });
}
#define ADD_INPLACE(T, S) extern "C" __global__ void add_inplace_##S(T* acc, const T* x, long n) { add_inplace<T>(acc, x, n); }
FOR_TYPES(ADD_INPLACE)

template <typename T> __device__ void scale(T* x, float s, long n) {
    map1<T, T>(x, x, n, [s](float v) { return v * s; });
}
#define SCALE(T, S) extern "C" __global__ void scale_##S(T* x, float s, long n) { scale<T>(x, s, n); }
FOR_TYPES(SCALE)

// x (N,C) += bias (C); vectors of eight when C is a multiple of eight, so a vector never wraps a row.
template <typename T> __device__ void add_bias(T* x, const float* bias, long n, int c) {
    if (c % 8 == 0) {
        GRID_STRIDE(j, n / 8) {
            Vec8<T> v = load8(x, j);
            int col = (int) (8 * j % c);
#pragma unroll
            for (int e = 0; e < 8; e++) v.v[e] = from_float<T>(to_float(v.v[e]) + bias[col + e]);
            store8(x, j, v);
        }
    } else {
        GRID_STRIDE(i, n) x[i] = from_float<T>(to_float(x[i]) + bias[i % c]);
    }
}
#define ADD_BIAS(T, S) extern "C" __global__ void add_bias_##S(T* x, const float* bias, long n, int c) { add_bias<T>(x, bias, n, c); }
FOR_TYPES(ADD_BIAS)

// Between storage types: f32 <-> bf16.
extern "C" __global__ void convert_f32_bf16(const float* in, bf16* out, long n) { map1(in, out, n, [](float v) { return v; }); }
extern "C" __global__ void convert_bf16_f32(const bf16* in, float* out, long n) { map1(in, out, n, [](float v) { return v; }); }

#define GELU_K 0.7978845608028654f

template <typename T> __device__ void gelu_fwd(const T* x, T* out, long n) {
    map1(x, out, n, [](float v) { return 0.5f * v * (1.f + tanhf(GELU_K * (v + 0.044715f * v * v * v))); });
}
#define GELU_FWD(T, S) extern "C" __global__ void gelu_fwd_##S(const T* x, T* out, long n) { gelu_fwd<T>(x, out, n); }
FOR_TYPES(GELU_FWD)

template <typename T> __device__ void gelu_bwd(const T* dout, const T* x, T* dx, long n) {
    map2(dout, x, dx, n, [](float d, float v) {
        float th = tanhf(GELU_K * (v + 0.044715f * v * v * v));
        return d * (0.5f * (1.f + th) + 0.5f * v * (1.f - th * th) * GELU_K * (1.f + 3.f * 0.044715f * v * v));
    });
}
#define GELU_BWD(T, S) extern "C" __global__ void gelu_bwd_##S(const T* dout, const T* x, T* dx, long n) { gelu_bwd<T>(dout, x, dx, n); }
FOR_TYPES(GELU_BWD)

// silu(gate) * up
template <typename T> __device__ void swiglu_fwd(const T* gate, const T* up, T* out, long n) {
    map2(gate, up, out, n, [](float g, float u) { return g / (1.f + expf(-g)) * u; });
}
#define SWIGLU_FWD(T, S) extern "C" __global__ void swiglu_fwd_##S(const T* g, const T* u, T* out, long n) { swiglu_fwd<T>(g, u, out, n); }
FOR_TYPES(SWIGLU_FWD)

template <typename T> __device__ __forceinline__ void swiglu_grad(float d, float g, float u, T& dg, T& du) {
    float sig = 1.f / (1.f + expf(-g));
    dg = from_float<T>(d * u * sig * (1.f + g * (1.f - sig)));
    du = from_float<T>(d * g * sig);
}

template <typename T> __device__ void swiglu_bwd(const T* dout, const T* gate, const T* up, T* dgate, T* dup, long n) {
    long n8 = n / 8;
    GRID_STRIDE(j, n8) {
        Vec8<T> d = load8(dout, j), g = load8(gate, j), u = load8(up, j), dg, du;
#pragma unroll
        for (int e = 0; e < 8; e++) swiglu_grad(to_float(d.v[e]), to_float(g.v[e]), to_float(u.v[e]), dg.v[e], du.v[e]);
        store8(dgate, j, dg);
        store8(dup, j, du);
    }
    GRID_STRIDE(i, n - 8 * n8) {
        long k = 8 * n8 + i;
        swiglu_grad(to_float(dout[k]), to_float(gate[k]), to_float(up[k]), dgate[k], dup[k]);
    }
}
#define SWIGLU_BWD(T, S) extern "C" __global__ void swiglu_bwd_##S(const T* d, const T* g, const T* u, T* dg, T* du, long n) \
    { swiglu_bwd<T>(d, g, u, dg, du, n); }
FOR_TYPES(SWIGLU_BWD)

// ids (N) -> rows of an f32 table (rows,C), as T: a shard holding rows [first, first + rows) of the vocabulary (the
// whole table: first 0); ids outside it give zero rows. Backward: rows with the same id meet in atomicAdd.
template <typename T> __device__ void embedding_fwd(const int* ids, const float* table, T* out, long n, int c, int first, int rows) {
    GRID_STRIDE(i, n * c) {
        int row = ids[i / c] - first;
        out[i] = from_float<T>(row >= 0 && row < rows ? table[(long) row * c + i % c] : 0.f);
    }
}
#define EMBEDDING_FWD(T, S) extern "C" __global__ void embedding_fwd_##S(const int* ids, const float* table, T* out, long n, int c, \
    int first, int rows) { embedding_fwd<T>(ids, table, out, n, c, first, rows); }
FOR_TYPES(EMBEDDING_FWD)

template <typename T> __device__ void embedding_bwd(const int* ids, const T* dout, float* dtable, long n, int c, int first, int rows) {
    GRID_STRIDE(i, n * c) {
        int row = ids[i / c] - first;
        if (row >= 0 && row < rows) atomicAdd(&dtable[(long) row * c + i % c], to_float(dout[i]));
    }
}
#define EMBEDDING_BWD(T, S) extern "C" __global__ void embedding_bwd_##S(const int* ids, const T* dout, float* dtable, long n, int c, \
    int first, int rows) { embedding_bwd<T>(ids, dout, dtable, n, c, first, rows); }
FOR_TYPES(EMBEDDING_BWD)

// Deterministic: a block owns EMBEDDING_ROWS rows of the table and walks the ids in order, each thread adding its
// columns of every token of those rows: the same sums, in token order, every run.
#define EMBEDDING_ROWS 32
template <typename T> __device__ void embedding_bwd_ordered(const int* ids, const T* dout, float* dtable, long n, int c, int first, int rows) {
    __shared__ int chunk[1024];
    int r0 = blockIdx.x * EMBEDDING_ROWS;
    for (long base = 0; base < n; base += 1024) {
        int count = (int) min(1024L, n - base);
        __syncthreads();
        for (int i = threadIdx.x; i < count; i += blockDim.x) chunk[i] = ids[base + i] - first;
        __syncthreads();
        for (int i = 0; i < count; i++) {
            int row = chunk[i];
            if (row < r0 || row >= r0 + EMBEDDING_ROWS || row >= rows) continue;
            for (int col = threadIdx.x; col < c; col += blockDim.x) dtable[(long) row * c + col] += to_float(dout[(base + i) * c + col]);
        }
    }
}
#define EMBEDDING_BWD_ORDERED(T, S) extern "C" __global__ void embedding_bwd_ordered_##S(const int* ids, const T* dout, float* dtable, \
    long n, int c, int first, int rows) { embedding_bwd_ordered<T>(ids, dout, dtable, n, c, first, rows); }
FOR_TYPES(EMBEDDING_BWD_ORDERED)

// x (B,T,H,D) rotated in pairs (i, i + D/2) by f32 cos/sin (T, D/2); sign = -1 for the inverse.
template <typename T> __device__ void rope(const T* x, const float* cos_t, const float* sin_t, T* out, long bt, int t, int h, int d, float sign) {
    int half = d / 2;
    if (half % 8 == 0) { // eight pairs a thread, 16- or 32-byte vectors: x[i..i+8) with x[half+i..), cos and sin alike
        int chunks = half / 8;
        GRID_STRIDE(idx, bt * h * chunks) {
            long rh = idx / chunks; // (row, head)
            int j = (int) (idx - rh * chunks), pos = (int) (rh / h % t);
            const T* xr = x + rh * d;
            T* orow = out + rh * d;
            Vec8<T> x1 = load8(xr, j), x2 = load8(xr, chunks + j), y1, y2;
            Vec8<float> c = load8(cos_t + (long) pos * half, j), s = load8(sin_t + (long) pos * half, j);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                float a = to_float(x1.v[e]), b = to_float(x2.v[e]), sn = sign * s.v[e];
                y1.v[e] = from_float<T>(a * c.v[e] - b * sn);
                y2.v[e] = from_float<T>(b * c.v[e] + a * sn);
            }
            store8(orow, j, y1);
            store8(orow, chunks + j, y2);
        }
        return;
    }
    GRID_STRIDE(idx, bt * h * half) {
        long row = idx / (h * half);
        int rem = idx % (h * half), head = rem / half, i = rem % half, pos = row % t;
        long base = (row * h + head) * d;
        float c = cos_t[pos * half + i], s = sign * sin_t[pos * half + i];
        float x1 = to_float(x[base + i]), x2 = to_float(x[base + i + half]);
        out[base + i] = from_float<T>(x1 * c - x2 * s);
        out[base + i + half] = from_float<T>(x2 * c + x1 * s);
    }
}
#define ROPE(T, S) extern "C" __global__ void rope_##S(const T* x, const float* c, const float* s, T* out, long bt, int t, int h, int d, float sign) \
    { rope<T>(x, c, s, out, bt, t, h, d, sign); }
FOR_TYPES(ROPE)
