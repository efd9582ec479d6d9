// LayerNorm and RMSNorm, forward and backward, on activations of type T with f32 weights and statistics.
// One block per row; weight gradients are column sums, in reduce.cu, except where rows are vectors of eight that
// one block spans: a backward then walks a chunk of rows and writes the chunk's partial sums too.
// A backward adds `residual` (the gradient of a skip connection around the norm) into dx unless it is null.
#include "common.cuh"

// Both norms move a row as 16- or 32-byte vectors of eight where its length c is a multiple of 8 (the launch then
// gives a thread per vector, not per element); otherwise element by element.

// This thread's share of Σ f(x) over the row xr.
template <typename T, typename F> __device__ __forceinline__ float row_sum(const T* xr, int c, F f) {
    float s = 0.f;
    if (c % 8 == 0)
        for (int j = threadIdx.x; j < c / 8; j += blockDim.x) {
            Vec8<T> v = load8(xr, j);
#pragma unroll
            for (int e = 0; e < 8; e++) s += f(to_float(v.v[e]));
        }
    else
        for (int j = threadIdx.x; j < c; j += blockDim.x) s += f(to_float(xr[j]));
    return s;
}

template <typename T> __device__ void layernorm_fwd(const T* x, const float* w, const float* b, T* out, float* mean,
                                                    float* rstd, int c, float eps) {
    __shared__ float shared[32];
    const T* xr = x + (long) blockIdx.x * c;
    T* o = out + (long) blockIdx.x * c;
    bool vec = c % 8 == 0;
    float m = block_sum(row_sum(xr, c, [](float v) { return v; }), shared) / c;
    float r = rsqrtf(block_sum(row_sum(xr, c, [m](float v) { return (v - m) * (v - m); }), shared) / c + eps);
    if (vec)
        for (int j = threadIdx.x; j < c / 8; j += blockDim.x) {
            Vec8<T> v = load8(xr, j), y;
            Vec8<float> wv = load8(w, j), bv = load8(b, j);
#pragma unroll
            for (int e = 0; e < 8; e++) y.v[e] = from_float<T>((to_float(v.v[e]) - m) * r * wv.v[e] + bv.v[e]);
            store8(o, j, y);
        }
    else
        for (int j = threadIdx.x; j < c; j += blockDim.x) o[j] = from_float<T>((to_float(xr[j]) - m) * r * w[j] + b[j]);
    if (threadIdx.x == 0) { mean[blockIdx.x] = m; rstd[blockIdx.x] = r; }
}
#define LN_FWD(T, S) extern "C" __global__ void layernorm_fwd_##S(const T* x, const float* w, const float* b, T* out, \
    float* mean, float* rstd, int c, float eps) { layernorm_fwd<T>(x, w, b, out, mean, rstd, c, eps); }
FOR_TYPES(LN_FWD)

template <typename T> __device__ void layernorm_bwd(const T* dout, const T* x, const float* w, const float* mean,
                                                    const float* rstd, const T* residual, T* dx, int c) {
    __shared__ float shared[32];
    long base = (long) blockIdx.x * c;
    float m = mean[blockIdx.x], r = rstd[blockIdx.x], sd = 0.f, sdn = 0.f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        float norm = (to_float(x[base + j]) - m) * r, dn = to_float(dout[base + j]) * w[j];
        sd += dn;
        sdn += dn * norm;
    }
    float meanD = block_sum(sd, shared) / c, meanDN = block_sum(sdn, shared) / c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        float norm = (to_float(x[base + j]) - m) * r, dn = to_float(dout[base + j]) * w[j];
        dx[base + j] = from_float<T>(r * (dn - meanD - norm * meanDN) + (residual ? to_float(residual[base + j]) : 0.f));
    }
}
#define LN_BWD(T, S) extern "C" __global__ void layernorm_bwd_##S(const T* dout, const T* x, const float* w, \
    const float* mean, const float* rstd, const T* residual, T* dx, int c) { layernorm_bwd<T>(dout, x, w, mean, rstd, residual, dx, c); }
FOR_TYPES(LN_BWD)

// LayerNorm's backward over rows [r0, r0 + rows) with its weight and bias gradients' partial sums, as RMSNorm's
// below: dx = rstd·(dn − mean(dn) − norm·mean(dn·norm)) + residual with dn = dout·w and norm = (x − mean)·rstd; a
// thread keeps eight columns of Σ dout·norm and Σ dout across the chunk and writes them to pw and pb (chunks, C),
// either null for a frozen parameter. c % 8 == 0 and c / 8 <= blockDim.x.
template <typename T> __device__ void layernorm_bwd_dw(const T* dout, const T* x, const float* w, const float* mean,
                                                       const float* rstd, const T* residual, T* dx, float* pw, float* pb,
                                                       long n, int c, int rows) {
    __shared__ float shared[32];
    int j = threadIdx.x;
    bool in = j < c / 8;
    Vec8<float> wv = in ? load8(w, j) : Vec8<float>{};
    Vec8<float> dw{}, db{};
    long r0 = (long) blockIdx.x * rows, r1 = min(r0 + rows, n);
    for (long r = r0; r < r1; r++) {
        float m = mean[r], rs = rstd[r], sd = 0.f, sdn = 0.f, norm[8], dn[8];
        Vec8<T> d;
        if (in) {
            Vec8<T> v = load8(x + r * c, j);
            d = load8(dout + r * c, j);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                norm[e] = (to_float(v.v[e]) - m) * rs;
                dn[e] = to_float(d.v[e]) * wv.v[e];
                sd += dn[e];
                sdn += dn[e] * norm[e];
            }
        }
        float meanD = block_sum(sd, shared) / c, meanDN = block_sum(sdn, shared) / c;
        if (!in) continue;
        Vec8<T> y, res;
        if (residual) res = load8(residual + r * c, j);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            y.v[e] = from_float<T>(rs * (dn[e] - meanD - norm[e] * meanDN) + (residual ? to_float(res.v[e]) : 0.f));
            dw.v[e] += to_float(d.v[e]) * norm[e];
            db.v[e] += to_float(d.v[e]);
        }
        store8(dx + r * c, j, y);
    }
    if (in && pw) store8(pw + (long) blockIdx.x * c, j, dw);
    if (in && pb) store8(pb + (long) blockIdx.x * c, j, db);
}
#define LN_BWD_DW(T, S) extern "C" __global__ void layernorm_bwd_dw_##S(const T* dout, const T* x, const float* w, \
    const float* mean, const float* rstd, const T* residual, T* dx, float* pw, float* pb, long n, int c, int rows) \
    { layernorm_bwd_dw<T>(dout, x, w, mean, rstd, residual, dx, pw, pb, n, c, rows); }
FOR_TYPES(LN_BWD_DW)

template <typename T> __device__ void rmsnorm_fwd(const T* x, const float* w, T* out, float* rstd, int c, float eps) {
    __shared__ float shared[32];
    const T* xr = x + (long) blockIdx.x * c;
    T* o = out + (long) blockIdx.x * c;
    bool vec = c % 8 == 0;
    float r = rsqrtf(block_sum(row_sum(xr, c, [](float v) { return v * v; }), shared) / c + eps);
    if (vec)
        for (int j = threadIdx.x; j < c / 8; j += blockDim.x) {
            Vec8<T> v = load8(xr, j), y;
            Vec8<float> wv = load8(w, j);
#pragma unroll
            for (int e = 0; e < 8; e++) y.v[e] = from_float<T>(to_float(v.v[e]) * r * wv.v[e]);
            store8(o, j, y);
        }
    else
        for (int j = threadIdx.x; j < c; j += blockDim.x) o[j] = from_float<T>(to_float(xr[j]) * r * w[j]);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}
#define RMS_FWD(T, S) extern "C" __global__ void rmsnorm_fwd_##S(const T* x, const float* w, T* out, float* rstd, int c, \
    float eps) { rmsnorm_fwd<T>(x, w, out, rstd, c, eps); }
FOR_TYPES(RMS_FWD)

// Eight columns of one row of RMSNorm's backward, in both kernels below: Σ dout·w·x·rstd, the row's share of meanDN,
// and dx = rstd·(dout·w − x·rstd·meanDN) + residual, resRow being the row's residual or null.
template <typename T> __device__ __forceinline__ float rms_dot8(const Vec8<T>& d, const Vec8<T>& v, const Vec8<float>& wv, float r) {
    float s = 0.f;
#pragma unroll
    for (int e = 0; e < 8; e++) s += to_float(d.v[e]) * wv.v[e] * to_float(v.v[e]) * r;
    return s;
}

template <typename T> __device__ __forceinline__ Vec8<T> rms_dx8(const Vec8<T>& d, const Vec8<T>& v, const Vec8<float>& wv, float r,
        float meanDN, const T* resRow, int j) {
    Vec8<T> y, res;
    if (resRow) res = load8(resRow, j);
#pragma unroll
    for (int e = 0; e < 8; e++)
        y.v[e] = from_float<T>(r * (to_float(d.v[e]) * wv.v[e] - to_float(v.v[e]) * r * meanDN) + (resRow ? to_float(res.v[e]) : 0.f));
    return y;
}

template <typename T> __device__ void rmsnorm_bwd(const T* dout, const T* x, const float* w, const float* rstd, const T* residual,
                                                  T* dx, int c) {
    __shared__ float shared[32];
    long base = (long) blockIdx.x * c;
    const T *dr = dout + base, *xr = x + base;
    T* dxr = dx + base;
    bool vec = c % 8 == 0;
    float r = rstd[blockIdx.x], s = 0.f;
    if (vec)
        for (int j = threadIdx.x; j < c / 8; j += blockDim.x) s += rms_dot8(load8(dr, j), load8(xr, j), load8(w, j), r);
    else
        for (int j = threadIdx.x; j < c; j += blockDim.x) s += to_float(dr[j]) * w[j] * to_float(xr[j]) * r;
    float meanDN = block_sum(s, shared) / c;
    if (vec)
        for (int j = threadIdx.x; j < c / 8; j += blockDim.x)
            store8(dxr, j, rms_dx8(load8(dr, j), load8(xr, j), load8(w, j), r, meanDN, residual ? residual + base : (const T*) nullptr, j));
    else
        for (int j = threadIdx.x; j < c; j += blockDim.x)
            dxr[j] = from_float<T>(r * (to_float(dr[j]) * w[j] - to_float(xr[j]) * r * meanDN) + (residual ? to_float(residual[base + j]) : 0.f));
}
#define RMS_BWD(T, S) extern "C" __global__ void rmsnorm_bwd_##S(const T* dout, const T* x, const float* w, \
    const float* rstd, const T* residual, T* dx, int c) { rmsnorm_bwd<T>(dout, x, w, rstd, residual, dx, c); }
FOR_TYPES(RMS_BWD)

// RMSNorm's backward over rows [r0, r0 + rows) with its weight gradient's partial sums: a thread holds eight columns
// of dw = Σ dout·x·rstd in registers across the chunk and writes them to pw (chunks, C) at the end, so dout and x
// are read once for dx and dw (the column sums in reduce.cu read them again); pw is null for a frozen weight.
// c % 8 == 0 and c / 8 <= blockDim.x.
template <typename T> __device__ void rmsnorm_bwd_dw(const T* dout, const T* x, const float* w, const float* rstd,
                                                     const T* residual, T* dx, float* pw, long n, int c, int rows) {
    __shared__ float shared[32];
    int j = threadIdx.x;
    bool in = j < c / 8;
    Vec8<float> wv = in ? load8(w, j) : Vec8<float>{};
    Vec8<float> dw{};
    long r0 = (long) blockIdx.x * rows, r1 = min(r0 + rows, n);
    for (long r = r0; r < r1; r++) {
        float rs = rstd[r], s = 0.f;
        Vec8<T> d, v;
        if (in) {
            d = load8(dout + r * c, j);
            v = load8(x + r * c, j);
            s = rms_dot8(d, v, wv, rs);
        }
        float meanDN = block_sum(s, shared) / c;
        if (!in) continue;
        store8(dx + r * c, j, rms_dx8(d, v, wv, rs, meanDN, residual ? residual + r * c : (const T*) nullptr, j));
#pragma unroll
        for (int e = 0; e < 8; e++) dw.v[e] += to_float(d.v[e]) * to_float(v.v[e]) * rs;
    }
    if (in && pw) store8(pw + (long) blockIdx.x * c, j, dw);
}
#define RMS_BWD_DW(T, S) extern "C" __global__ void rmsnorm_bwd_dw_##S(const T* dout, const T* x, const float* w, \
    const float* rstd, const T* residual, T* dx, float* pw, long n, int c, int rows) \
    { rmsnorm_bwd_dw<T>(dout, x, w, rstd, residual, dx, pw, n, c, rows); }
FOR_TYPES(RMS_BWD_DW)
