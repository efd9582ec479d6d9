// Reductions with a fixed order (no atomics), so a resumed run reproduces an uninterrupted one.
#include "common.cuh"

// Column sums over rows in two passes. Pass one: a block of COLS columns x YS row lanes walks one chunk of rows and
// writes its partial sums (chunks, C); pass two adds each column's partials in order. Per element it sums dout
// (the bias gradient of a linear or a LayerNorm) and, when x is given, dout·(x − mean)·rstd (a norm's weight
// gradient; mean is null for RMSNorm). pw or pb may be null when that sum is not wanted.
// A thread takes V adjacent columns (8 where C is a multiple of 8: a warp then reads 512 contiguous bytes of a bf16
// row rather than 64); every column's sum runs in the same order whatever V is.
#define COLS 32
#define YS 8

template <typename T, int V> __device__ void column_partials(const T* dout, const T* x, const float* mean, const float* rstd,
                                                             float* pw, float* pb, long n, int c, int rows) {
    __shared__ float sw[YS][COLS * V + 1], sb[YS][COLS * V + 1];
    int j0 = (blockIdx.x * COLS + threadIdx.x) * V; // this thread's first column
    long r0 = (long) blockIdx.y * rows, r1 = min(r0 + rows, n);
    float w[V] = {}, b[V] = {};
    if (j0 < c) {
        for (long r = r0 + threadIdx.y; r < r1; r += YS) {
            float g[V], xv[V], shift = mean ? mean[r] : 0.f, scale = rstd ? rstd[r] : 0.f;
            if constexpr (V == 8) {
                Vec8<T> gv = load8(dout + r * c, j0 / 8);
#pragma unroll
                for (int e = 0; e < 8; e++) g[e] = to_float(gv.v[e]);
                if (x) {
                    Vec8<T> v = load8(x + r * c, j0 / 8);
#pragma unroll
                    for (int e = 0; e < 8; e++) xv[e] = to_float(v.v[e]);
                }
            } else {
                g[0] = to_float(dout[r * c + j0]);
                if (x) xv[0] = to_float(x[r * c + j0]);
            }
#pragma unroll
            for (int e = 0; e < V; e++) {
                b[e] += g[e];
                if (x) w[e] += g[e] * (xv[e] - shift) * scale;
            }
        }
    }
#pragma unroll
    for (int e = 0; e < V; e++) {
        sw[threadIdx.y][threadIdx.x * V + e] = w[e];
        sb[threadIdx.y][threadIdx.x * V + e] = b[e];
    }
    __syncthreads();
    if (threadIdx.y != 0 || j0 >= c) return;
#pragma unroll
    for (int e = 0; e < V; e++) {
        float tw = 0.f, tb = 0.f;
        for (int y = 0; y < YS; y++) { tw += sw[y][threadIdx.x * V + e]; tb += sb[y][threadIdx.x * V + e]; }
        if (pw) pw[(long) blockIdx.y * c + j0 + e] = tw;
        if (pb) pb[(long) blockIdx.y * c + j0 + e] = tb;
    }
}
#define COL_PARTIALS(T, S) \
    extern "C" __global__ void column_partials_##S(const T* dout, const T* x, const float* mean, const float* rstd, float* pw, \
        float* pb, long n, int c, int rows) { column_partials<T, 1>(dout, x, mean, rstd, pw, pb, n, c, rows); } \
    extern "C" __global__ void column_partials8_##S(const T* dout, const T* x, const float* mean, const float* rstd, float* pw, \
        float* pb, long n, int c, int rows) { column_partials<T, 8>(dout, x, mean, rstd, pw, pb, n, c, rows); }
FOR_TYPES(COL_PARTIALS)

// out (C) += Σ_chunks partials (chunks, C). A block of 32 x 32 threads takes 32 columns: thread row y sums chunks
// y, y + 32, ..., then row 0 adds the 32 sums in order, so the result does not change from run to run. (A thread a
// column left a 768-column sum to three blocks: 34 us for 3 MB.)
extern "C" __global__ void column_sum_acc(const float* partials, int chunks, int c, float* out) {
    __shared__ float sums[32][33];
    int j = blockIdx.x * 32 + threadIdx.x;
    float s = 0.f;
    if (j < c)
#pragma unroll 4
        for (int r = threadIdx.y; r < chunks; r += 32) s += partials[(long) r * c + j];
    sums[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y != 0 || j >= c) return;
    s = 0.f;
#pragma unroll
    for (int y = 0; y < 32; y++) s += sums[y][threadIdx.x];
    out[j] += s;
}
