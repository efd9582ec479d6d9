// Multi-tensor ops over every parameter in one launch. A table of slots (one per tensor) and a list of chunks
// (slot << 32 | chunk index) give each block CHUNK elements of one tensor, so tensors of any size share one grid.
// Per-step values (learning rate, bias corrections, the gradient norm) are read from device memory, so a captured
// step replays with new ones.
#include "common.cuh"

#define CHUNK 32768

__device__ __forceinline__ const Slot& chunk_slot(const Slot* slots, const long* chunks, long& begin, long& end) {
    long c = chunks[blockIdx.x];
    const Slot& s = slots[c >> 32];
    begin = (c & 0xffffffffL) * CHUNK;
    end = min(begin + CHUNK, s.n);
    return s;
}

// partials[chunk] = Σ p² over the chunk.
extern "C" __global__ void multi_sum_squares(const Slot* slots, const long* chunks, double* partials) {
    __shared__ float shared[32];
    long begin, end;
    const Slot& s = chunk_slot(slots, chunks, begin, end);
    float acc = 0.f;
    for (long i = begin + threadIdx.x; i < end; i += blockDim.x) acc += s.p[i] * s.p[i];
    acc = block_sum(acc, shared);
    if (threadIdx.x == 0) partials[blockIdx.x] = (double) acc;
}

// out[0] = Σ partials, one block of 1024 threads: fixed strided sums, then a fixed tree.
extern "C" __global__ void sum_partials(const double* partials, long count, double* out) {
    __shared__ double s[1024];
    double acc = 0;
    for (long i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = s[0];
}

// PyTorch's AdamW. schedule: lr, 1 - beta1^t, sqrt(1 - beta2^t); grad_sum_squares: the squared global norm, which
// scales every gradient by min(1, max_norm / (norm + 1e-6)) when max_norm > 0. A non-finite norm skips the update.
// Writing the bf16 copy here saves the GEMMs' copy a second pass over every weight.
extern "C" __global__ void multi_adamw(const Slot* slots, const long* chunks, float beta1, float beta2, float eps,
                                       const double* schedule, const double* grad_sum_squares, float max_norm) {
    if (!isfinite(grad_sum_squares[0])) return;
    long begin, end;
    const Slot& s = chunk_slot(slots, chunks, begin, end);
    float lr = (float) schedule[0], bc1 = (float) schedule[1], bc2_sqrt = (float) schedule[2];
    float grad_scale = max_norm > 0.f ? (float) fmin(1.0, max_norm / (sqrt(grad_sum_squares[0]) + 1e-6)) : 1.f;
    float decay = 1.f - lr * (float) s.weight_decay, step_size = lr / bc1;
    for (long i = begin + threadIdx.x; i < end; i += blockDim.x) {
        float gi = s.g[i] * grad_scale;
        float mi = s.m[i] + (1.f - beta1) * (gi - s.m[i]);
        float vi = beta2 * s.v[i] + (1.f - beta2) * gi * gi;
        s.m[i] = mi;
        s.v[i] = vi;
        float pi = s.p[i] * decay - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
        s.p[i] = pi;
        if (s.copy) s.copy[i] = from_float<bf16>(pi);
    }
}
