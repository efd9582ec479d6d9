// Fused softmax cross-entropy: one block per row of logits (N,W) of type T, over the row's first v columns (the
// classes; the rest pad the vocabulary to aligned GEMMs and get gradient 0); losses in f32. The gradient may be
// written over the logits, so no second (N,W) buffer exists and nothing (N,W) is ever held in f32.
#include "common.cuh"

// e^(x - shift) for shift2 = shift·log2 e: the accurate expf, twice an element, made this kernel issue-bound.
__device__ __forceinline__ float exp_shifted(float x, float shift2) { return exp2_approx(fmaf(x, LOG2E, -shift2)); }

// Online softmax over one thread's logits: s is the sum of e^(x - mx) so far.
__device__ __forceinline__ void softmax_step(float x, float& mx, float& s) {
    if (x > mx) { s = s * exp_shifted(mx, x * LOG2E) + 1.f; mx = x; }
    else s += exp_shifted(x, mx * LOG2E);
}

// An ignored row (negative target): loss 0, gradient 0.
template <typename T> __device__ void ignore_row(T* dlogits, float* losses, long base, int w) {
    if (threadIdx.x == 0) losses[blockIdx.x] = 0.f;
    if (dlogits) for (int j = threadIdx.x; j < w; j += blockDim.x) dlogits[base + j] = from_float<T>(0.f);
}

// Rows whose length is a multiple of 8 move as vectors of eight (VEC), others element by element.
template <typename T, bool VEC> __device__ void cross_entropy(const T* logits, const int* targets, T* dlogits, float* losses,
                                                              int w, int v, float grad_scale) {
    __shared__ float shared[32];
    long base = (long) blockIdx.x * w;
    int target = targets[blockIdx.x];
    if (target < 0) return ignore_row(dlogits, losses, base, w);
    // One pass for the max and the sum of exponentials (online softmax), a second for the gradient.
    float mx = -INFINITY, s = 0.f;
    if (VEC)
        for (int j = threadIdx.x; j < w / 8; j += blockDim.x) {
            Vec8<T> x = load8(logits + base, j);
#pragma unroll
            for (int e = 0; e < 8; e++)
                if (8 * j + e < v) softmax_step(to_float(x.v[e]), mx, s);
        }
    else
        for (int j = threadIdx.x; j < v; j += blockDim.x) softmax_step(to_float(logits[base + j]), mx, s);
    float rowMax = block_max(mx, shared);
    s = block_sum(mx == -INFINITY ? 0.f : s * exp_shifted(mx, rowMax * LOG2E), shared);
    mx = rowMax;
    float target_logit = to_float(logits[base + target]);
    __syncthreads(); // every thread has read the target logit before any overwrites it
    if (threadIdx.x == 0) losses[blockIdx.x] = logf(s) + mx - target_logit;
    if (!dlogits) return;
    float inv = grad_scale / s, mx2 = mx * LOG2E;
    if (VEC)
        for (int j = threadIdx.x; j < w / 8; j += blockDim.x) {
            Vec8<T> x = load8(logits + base, j), d;
#pragma unroll
            for (int e = 0; e < 8; e++)
                d.v[e] = from_float<T>(8 * j + e < v ? exp_shifted(to_float(x.v[e]), mx2) * inv - (8 * j + e == target ? grad_scale : 0.f) : 0.f);
            store8(dlogits + base, j, d);
        }
    else
        for (int j = threadIdx.x; j < w; j += blockDim.x)
            dlogits[base + j] = from_float<T>(j < v ? exp_shifted(to_float(logits[base + j]), mx2) * inv - (j == target ? grad_scale : 0.f) : 0.f);
}
#define CE(T, S) \
    extern "C" __global__ void cross_entropy_##S(const T* logits, const int* targets, T* dlogits, float* losses, int w, int v, float grad_scale) \
        { cross_entropy<T, false>(logits, targets, dlogits, losses, w, v, grad_scale); } \
    extern "C" __global__ void cross_entropy8_##S(const T* logits, const int* targets, T* dlogits, float* losses, int w, int v, float grad_scale) \
        { cross_entropy<T, true>(logits, targets, dlogits, losses, w, v, grad_scale); }
FOR_TYPES(CE)

// Vocabulary-parallel cross-entropy: each rank holds columns [0, v) of its logits for classes [first, first + v).
// First half, one block per row: stats (N,3) f32 = max, sum of e^(x - max), the target's logit where it is here.
template <typename T> __device__ void ce_stats(const T* logits, const int* targets, float* stats, int w, int v, int first) {
    __shared__ float shared[32];
    long base = (long) blockIdx.x * w;
    float mx = -INFINITY, s = 0.f;
    for (int j = threadIdx.x; j < v; j += blockDim.x) softmax_step(to_float(logits[base + j]), mx, s);
    float rowMax = block_max(mx, shared);
    s = block_sum(mx == -INFINITY ? 0.f : s * exp_shifted(mx, rowMax * LOG2E), shared);
    if (threadIdx.x == 0) {
        int local = targets[blockIdx.x] - first;
        stats[3 * blockIdx.x] = rowMax;
        stats[3 * blockIdx.x + 1] = s;
        stats[3 * blockIdx.x + 2] = local >= 0 && local < v ? to_float(logits[base + local]) : 0.f;
    }
}
// Second half, one block per row: every rank's stats (R,N,3) give the loss over the whole vocabulary and this rank's
// part of the gradient; dlogits may be the logits.
template <typename T> __device__ void ce_from_stats(const T* logits, const int* targets, const float* stats, T* dlogits, float* losses,
                                                    int w, int v, int first, int ranks, int n, float grad_scale) {
    long base = (long) blockIdx.x * w;
    int target = targets[blockIdx.x];
    if (target < 0) return ignore_row(dlogits, losses, base, w);
    float mx = -INFINITY, s = 0.f, t = 0.f;
    for (int r = 0; r < ranks; r++) mx = fmaxf(mx, stats[3 * ((long) r * n + blockIdx.x)]);
    for (int r = 0; r < ranks; r++) {
        const float* st = stats + 3 * ((long) r * n + blockIdx.x);
        if (st[0] != -INFINITY) s += st[1] * exp_shifted(st[0], mx * LOG2E);
        t += st[2];
    }
    if (threadIdx.x == 0) losses[blockIdx.x] = logf(s) + mx - t;
    if (!dlogits) return;
    float inv = grad_scale / s, mx2 = mx * LOG2E;
    int local = target - first;
    for (int j = threadIdx.x; j < w; j += blockDim.x)
        dlogits[base + j] = from_float<T>(j < v ? exp_shifted(to_float(logits[base + j]), mx2) * inv - (j == local ? grad_scale : 0.f) : 0.f);
}
#define CE_SHARD(T, S) \
    extern "C" __global__ void ce_stats_##S(const T* logits, const int* targets, float* stats, int w, int v, int first) \
        { ce_stats<T>(logits, targets, stats, w, v, first); } \
    extern "C" __global__ void ce_from_stats_##S(const T* logits, const int* targets, const float* stats, T* dlogits, float* losses, \
        int w, int v, int first, int ranks, int n, float grad_scale) \
        { ce_from_stats<T>(logits, targets, stats, dlogits, losses, w, v, first, ranks, n, grad_scale); }
FOR_TYPES(CE_SHARD)
