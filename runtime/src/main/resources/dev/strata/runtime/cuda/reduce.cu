// Reductions with a fixed order (no atomics), so a resumed run reproduces an uninterrupted one.
#include "common.cuh"

// Column sums over rows in two passes. Pass one: a block of COLS columns x YS row lanes walks one chunk of rows and
// writes its partial sums (chunks, C); pass two adds each column's partials in order. Per element it sums dout
// (the bias gradient of a linear or a LayerNorm) and, when x is given, dout·(x − mean)·rstd (a norm's weight
// gradient; mean is null for RMSNorm). pw or pb may be null when that sum is not wanted.
#define COLS 32
#define YS 8

template <typename T> __device__ void column_partials(const T* dout, const T* x, const float* mean, const float* rstd,
                                                      float* pw, float* pb, long n, int c, int rows) {
    __shared__ float sw[YS][COLS + 1], sb[YS][COLS + 1];
    int j = blockIdx.x * COLS + threadIdx.x;
    long r0 = (long) blockIdx.y * rows, r1 = min(r0 + rows, n);
    float w = 0.f, b = 0.f;
    if (j < c) {
        for (long r = r0 + threadIdx.y; r < r1; r += YS) {
            float g = to_float(dout[r * c + j]);
            b += g;
            if (x) w += g * (to_float(x[r * c + j]) - (mean ? mean[r] : 0.f)) * rstd[r];
        }
    }
    sw[threadIdx.y][threadIdx.x] = w;
    sb[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y != 0 || j >= c) return;
    float tw = 0.f, tb = 0.f;
    for (int y = 0; y < YS; y++) { tw += sw[y][threadIdx.x]; tb += sb[y][threadIdx.x]; }
    if (pw) pw[(long) blockIdx.y * c + j] = tw;
    if (pb) pb[(long) blockIdx.y * c + j] = tb;
}
#define COL_PARTIALS(T, S) extern "C" __global__ void column_partials_##S(const T* dout, const T* x, const float* mean, \
    const float* rstd, float* pw, float* pb, long n, int c, int rows) { column_partials<T>(dout, x, mean, rstd, pw, pb, n, c, rows); }
FOR_TYPES(COL_PARTIALS)

// out (C) += Σ_chunks partials (chunks, C), in chunk order.
extern "C" __global__ void column_sum_acc(const float* partials, int chunks, int c, float* out) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    float s = 0.f;
    for (int r = 0; r < chunks; r++) s += partials[(long) r * c + j];
    out[j] += s;
}
