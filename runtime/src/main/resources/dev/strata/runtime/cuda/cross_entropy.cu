// Fused softmax cross-entropy, F32: one block per row of logits (N,V); never a second (N,V) buffer, since the
// gradient may be written over the logits.
#include "common.cuh"

extern "C" __global__ void cross_entropy_f32(const float* logits, const int* targets, float* dlogits, float* losses,
                                             int v, float grad_scale) {
    __shared__ float shared[32];
    long base = (long) blockIdx.x * v;
    int target = targets[blockIdx.x];
    if (target < 0) {
        if (threadIdx.x == 0) losses[blockIdx.x] = 0.f;
        if (dlogits) for (int j = threadIdx.x; j < v; j += blockDim.x) dlogits[base + j] = 0.f;
        return;
    }
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < v; j += blockDim.x) mx = fmaxf(mx, logits[base + j]);
    mx = block_max(mx, shared);
    float s = 0.f;
    for (int j = threadIdx.x; j < v; j += blockDim.x) s += expf(logits[base + j] - mx);
    s = block_sum(s, shared);
    float target_logit = logits[base + target];
    __syncthreads(); // every thread has read the target logit before any overwrites it
    if (threadIdx.x == 0) losses[blockIdx.x] = logf(s) + mx - target_logit;
    if (dlogits) {
        float inv = grad_scale / s;
        for (int j = threadIdx.x; j < v; j += blockDim.x)
            dlogits[base + j] = expf(logits[base + j] - mx) * inv - (j == target ? grad_scale : 0.f);
    }
}
