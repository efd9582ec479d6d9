// Shared helpers of Strata's kernels: the bf16 type and its conversions, block reductions in a fixed order (so
// results do not vary between runs), and the grid-stride loop. No CUDA headers are needed, so NVRTC compiles
// these without an include path.
#pragma once

#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

// bfloat16 as its bits; arithmetic happens in float.
struct bf16 { unsigned short bits; };

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __uint_as_float(((unsigned) x.bits) << 16); }

template <typename T> __device__ __forceinline__ T from_float(float f);
template <> __device__ __forceinline__ float from_float<float>(float f) { return f; }
// Round to nearest even, NaN stays NaN: the same rule as the CPU side's HostTensor, in one instruction (sm_80+).
template <> __device__ __forceinline__ bf16 from_float<bf16>(float f) {
    bf16 r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.bits) : "f"(f));
    return r;
}

// Two floats as bf16 (round to nearest even) in one register, lo in the lower half.
__device__ __forceinline__ unsigned bf16x2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// 2^x in one MUFU instruction. Softmaxes run in base 2 with log2(e) folded into their scale, so e^x costs one FFMA
// and one EX2 (the accurate expf is several times that).
#define LOG2E 1.4426950408889634f
__device__ __forceinline__ float exp2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// Stamps a kernel wrapper for each activation type: X(T, suffix).
#define FOR_TYPES(X) X(float, f32) X(bf16, bf16)

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float* shared32) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) shared32[warp] = v;
    __syncthreads();
    v = lane < warps ? shared32[lane] : 0.f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* shared32) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) shared32[warp] = v;
    __syncthreads();
    v = lane < warps ? shared32[lane] : -INFINITY;
    return warp_max(v);
}

// Asynchronous copies into shared memory (cp.async, sm_80+): 16 bytes from src, or zeros where !valid (src is then
// not read). A group of them is complete after copy_commit and copy_wait<PENDING> leaves at most PENDING groups
// newer than it in flight; a __syncthreads then shows every thread's copies to the block.
__device__ __forceinline__ void copy16_async(void* shared_dst, const void* src, bool valid) {
    unsigned d = (unsigned) __cvta_generic_to_shared(shared_dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(d), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void copy_commit() { asm volatile("cp.async.commit_group;"); }
template <int PENDING> __device__ __forceinline__ void copy_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(PENDING)); }

// One tensor of a multi-tensor op (CudaBackend's slot table): p of n floats; g, m, v (AdamW's gradient and moments)
// and copy (the bf16 copy the GEMMs read, written as p is updated) may be null.
struct Slot { float* p; float* g; float* m; float* v; bf16* copy; long n; double weight_decay; };

#define GRID_STRIDE(i, n) for (long i = (long) blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long) blockDim.x * gridDim.x)

// Eight elements moved as one (16 bytes of bf16, 32 of f32): element-wise kernels read and write whole vectors.
// Tensors start at allocation boundaries (256-byte aligned), so vector j of a tensor is aligned.
template <typename T> struct alignas(16) Vec8 { T v[8]; };

template <typename T> __device__ __forceinline__ Vec8<T> load8(const T* p, long j) { return reinterpret_cast<const Vec8<T>*>(p)[j]; }

template <typename T> __device__ __forceinline__ void store8(T* p, long j, const Vec8<T>& x) { reinterpret_cast<Vec8<T>*>(p)[j] = x; }

// out[i] = f(a[i]) for i < n, in f32; eight at a time, then the tail. out may be a.
template <typename A, typename B, typename F> __device__ __forceinline__ void map1(const A* a, B* out, long n, F f) {
    long n8 = n / 8;
    GRID_STRIDE(j, n8) {
        Vec8<A> x = load8(a, j);
        Vec8<B> r;
#pragma unroll
        for (int e = 0; e < 8; e++) r.v[e] = from_float<B>(f(to_float(x.v[e])));
        store8(out, j, r);
    }
    GRID_STRIDE(i, n - 8 * n8) out[8 * n8 + i] = from_float<B>(f(to_float(a[8 * n8 + i])));
}

// out[i] = f(a[i], b[i]) for i < n, in f32; eight at a time, then the tail. out may be a or b.
template <typename T, typename F> __device__ __forceinline__ void map2(const T* a, const T* b, T* out, long n, F f) {
    long n8 = n / 8;
    GRID_STRIDE(j, n8) {
        Vec8<T> x = load8(a, j), y = load8(b, j), r;
#pragma unroll
        for (int e = 0; e < 8; e++) r.v[e] = from_float<T>(f(to_float(x.v[e]), to_float(y.v[e])));
        store8(out, j, r);
    }
    GRID_STRIDE(i, n - 8 * n8) { long k = 8 * n8 + i; out[k] = from_float<T>(f(to_float(a[k]), to_float(b[k]))); }
}
