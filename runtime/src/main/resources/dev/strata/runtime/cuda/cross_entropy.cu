// Fused softmax cross-entropy: one block per row of logits (N,V) of type T; losses in f32. The gradient may be
// written over the logits, so no second (N,V) buffer exists and nothing (N,V) is ever held in f32.
#include "common.cuh"

template <typename T> __device__ void cross_entropy(const T* logits, const int* targets, T* dlogits, float* losses,
                                                    int v, float grad_scale) {
    __shared__ float shared[32];
    long base = (long) blockIdx.x * v;
    int target = targets[blockIdx.x];
    if (target < 0) {
        if (threadIdx.x == 0) losses[blockIdx.x] = 0.f;
        if (dlogits) for (int j = threadIdx.x; j < v; j += blockDim.x) dlogits[base + j] = from_float<T>(0.f);
        return;
    }
    // One pass for the max and the sum of exponentials (online softmax), a second for the gradient.
    float mx = -INFINITY, s = 0.f;
    for (int j = threadIdx.x; j < v; j += blockDim.x) {
        float x = to_float(logits[base + j]);
        if (x > mx) { s = s * expf(mx - x) + 1.f; mx = x; }
        else s += expf(x - mx);
    }
    float rowMax = block_max(mx, shared);
    s = block_sum(mx == -INFINITY ? 0.f : s * expf(mx - rowMax), shared);
    mx = rowMax;
    float target_logit = to_float(logits[base + target]);
    __syncthreads(); // every thread has read the target logit before any overwrites it
    if (threadIdx.x == 0) losses[blockIdx.x] = logf(s) + mx - target_logit;
    if (dlogits) {
        float inv = grad_scale / s;
        for (int j = threadIdx.x; j < v; j += blockDim.x)
            dlogits[base + j] = from_float<T>(expf(to_float(logits[base + j]) - mx) * inv - (j == target ? grad_scale : 0.f));
    }
}
#define CE(T, S) extern "C" __global__ void cross_entropy_##S(const T* logits, const int* targets, T* dlogits, \
    float* losses, int v, float grad_scale) { cross_entropy<T>(logits, targets, dlogits, losses, v, grad_scale); }
FOR_TYPES(CE)
