// Reductions with a fixed order (no atomics), so a resumed run reproduces an uninterrupted one.
#include "common.cuh"

// dbias (C) += column sums of dy (N,C): one thread per column, coalesced across the warp.
extern "C" __global__ void sum_rows_acc_f32(const float* dy, float* dbias, long n, int c) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    float s = 0.f;
    for (long r = 0; r < n; r++) s += dy[r * c + j];
    dbias[j] += s;
}

// Per-block partial sums of squares; partials[blockIdx.x] in double.
extern "C" __global__ void sum_squares_partial_f32(const float* x, long n, double* partials) {
    __shared__ float shared[32];
    float s = 0.f;
    GRID_STRIDE(i, n) s += x[i] * x[i];
    s = block_sum(s, shared);
    if (threadIdx.x == 0) partials[blockIdx.x] += (double) s;
}

// One block adds the partials in order: out[0] = sum.
extern "C" __global__ void sum_partials(const double* partials, int count, double* out) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    double s = 0;
    for (int i = 0; i < count; i++) s += partials[i];
    out[0] = s;
}
