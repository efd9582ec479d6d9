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

// partials[chunk] = Σ p² over the chunk, four elements a load (a chunk starts 16-byte aligned; the tail of a tensor
// whose size is not a multiple of 4 goes one by one).
extern "C" __global__ void multi_sum_squares(const Slot* slots, const long* chunks, double* partials) {
    __shared__ float shared[32];
    long begin, end;
    const Slot& s = chunk_slot(slots, chunks, begin, end);
    float acc = 0.f;
    long quads = (end - begin) / 4;
    const float4* p4 = (const float4*) (s.p + begin);
    for (long i = threadIdx.x; i < quads; i += blockDim.x) {
        float4 p = p4[i];
        acc += p.x * p.x + p.y * p.y + p.z * p.z + p.w * p.w;
    }
    for (long i = begin + 4 * quads + threadIdx.x; i < end; i += blockDim.x) acc += s.p[i] * s.p[i];
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

// One element of PyTorch's AdamW: gradient g already clipped; decay = 1 - lr * weight_decay.
// Every rounding spelled out (fused where fmaf says, nowhere else), so the CPU's AdamW (offload's CpuAdamW) can
// take the same steps and give the same bits.
__device__ __forceinline__ void adamw(float& p, float g, float& m, float& v, float beta1, float beta2, float eps, float decay,
                                      float step_size, float bc2_sqrt) {
    m = fmaf(__fsub_rn(1.f, beta1), __fsub_rn(g, m), m);
    v = fmaf(beta2, v, __fmul_rn(__fmul_rn(__fsub_rn(1.f, beta2), g), g));
    p = fmaf(p, decay, -__fdiv_rn(__fmul_rn(step_size, m), __fadd_rn(__fdiv_rn(__fsqrt_rn(v), bc2_sqrt), eps)));
}

// PyTorch's AdamW. schedule: lr, 1 - beta1^t, sqrt(1 - beta2^t); grad_sum_squares: the squared global norm, which
// scales every gradient by min(1, max_norm / (norm + 1e-6)) when max_norm > 0. A non-finite norm skips the update.
// Writing the bf16 copy here saves the GEMMs' copy a second pass over every weight. Four elements a thread and
// load keep enough bytes in flight to stream at DRAM speed: 1.07x the byte floor on an H200, 1.4x one at a time.
extern "C" __global__ void multi_adamw(const Slot* slots, const long* chunks, float beta1, float beta2, float eps,
                                       const double* schedule, const double* grad_sum_squares, float max_norm) {
    if (!isfinite(grad_sum_squares[0])) return;
    long begin, end;
    const Slot& s = chunk_slot(slots, chunks, begin, end);
    float lr = (float) schedule[0], bc1 = (float) schedule[1], bc2_sqrt = (float) schedule[2];
    float grad_scale = max_norm > 0.f ? (float) fmin(1.0, max_norm / (sqrt(grad_sum_squares[0]) + 1e-6)) : 1.f;
    float decay = __fsub_rn(1.f, __fmul_rn(lr, (float) s.weight_decay)), step_size = __fdiv_rn(lr, bc1);
    long quads = (end - begin) / 4;
    float4 *p4 = (float4*) (s.p + begin), *m4 = (float4*) (s.m + begin), *v4 = (float4*) (s.v + begin);
    const float4* g4 = (const float4*) (s.g + begin);
    for (long i = threadIdx.x; i < quads; i += blockDim.x) {
        float4 p = p4[i], g = g4[i], m = m4[i], v = v4[i];
        adamw(p.x, g.x * grad_scale, m.x, v.x, beta1, beta2, eps, decay, step_size, bc2_sqrt);
        adamw(p.y, g.y * grad_scale, m.y, v.y, beta1, beta2, eps, decay, step_size, bc2_sqrt);
        adamw(p.z, g.z * grad_scale, m.z, v.z, beta1, beta2, eps, decay, step_size, bc2_sqrt);
        adamw(p.w, g.w * grad_scale, m.w, v.w, beta1, beta2, eps, decay, step_size, bc2_sqrt);
        p4[i] = p;
        m4[i] = m;
        v4[i] = v;
        if (s.copy) ((uint2*) (s.copy + begin))[i] = make_uint2(bf16x2(p.x, p.y), bf16x2(p.z, p.w));
    }
    for (long i = begin + 4 * quads + threadIdx.x; i < end; i += blockDim.x) {
        adamw(s.p[i], s.g[i] * grad_scale, s.m[i], s.v[i], beta1, beta2, eps, decay, step_size, bc2_sqrt);
        if (s.copy) s.copy[i] = from_float<bf16>(s.p[i]);
    }
}
