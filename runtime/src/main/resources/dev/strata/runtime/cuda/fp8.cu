// FP8 operands for cuBLASLt's FP8 GEMMs, which contract over a contiguous K. Each kernel takes BLOCK = 32*E
// consecutive elements of the contracted dimension per warp (lane l holds elements l*E .. l*E+E-1), optionally
// rotates them by the normalised Walsh–Hadamard matrix of size BLOCK (butterflies in registers, then across lanes
// with shuffles), and either records the amax or quantizes with the per-tensor scale max_fp8 / amax. "rows" kernels
// contract over the last dimension of x (R,C) and write (R,C); "cols" kernels contract over R and write the
// transpose (C,R), staging a BLOCK x 32 tile in shared memory so reads and writes coalesce.
// The quantize kernels take amax as the max of amax_src[0 .. amax_count): current scaling passes the amax kernel's
// result (two reads of the source); delayed scaling passes an amax history of earlier steps and records this
// tensor's amax into amax_record while quantizing (one read).
#include "common.cuh"

#define FULL 0xffffffffu

// Round to nearest even, saturate to ±max, NaN stays NaN: cvt.rn.satfinite (sm_89+), as Fp8.encode does.
__device__ __forceinline__ unsigned char to_fp8(float x, int e5m2) {
    unsigned short r;
    if (e5m2) asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(r) : "f"(0.f), "f"(x));
    else asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(0.f), "f"(x));
    return (unsigned char) (r & 0xff);
}

// v <- H v over the warp's 32*E elements, unnormalised.
template <int E> __device__ __forceinline__ void warp_hadamard(float (&v)[E], int lane) {
#pragma unroll
    for (int h = 1; h < E; h <<= 1)
#pragma unroll
        for (int e = 0; e < E; e++)
            if ((e & h) == 0) { float a = v[e], b = v[e + h]; v[e] = a + b; v[e + h] = a - b; }
#pragma unroll
    for (int m = 1; m < 32; m <<= 1)
#pragma unroll
        for (int e = 0; e < E; e++) {
            float o = __shfl_xor_sync(FULL, v[e], m);
            v[e] = (lane & m) ? o - v[e] : v[e] + o;
        }
}

__device__ __forceinline__ float warp_max_abs(float m) {
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(FULL, m, o));
    return m;
}

// amax >= 0, so its float bits order as unsigned ints.
__device__ __forceinline__ void atomic_max_abs(float* amax, float m) { atomicMax((unsigned*) amax, __float_as_uint(m)); }

__device__ __forceinline__ float quant_scale(const float* amax_src, int amax_count, float max_fp8) {
    float a = 0.f;
    for (int i = 0; i < amax_count; i++) a = fmaxf(a, amax_src[i]);
    return a > 0.f && a < INFINITY ? max_fp8 / a : 1.f;
}

// ---- rows: x (R,C) contracted over C; chunks of 32*E along the flattened tensor, C a multiple of 32*E -------------

template <typename T, int E> __device__ __forceinline__ void load_rows(const T* x, long chunk, long n, int lane, float (&v)[E]) {
    long base = chunk * 32 * E + (long) lane * E;
#pragma unroll
    for (int e = 0; e < E; e++) v[e] = base + e < n ? to_float(x[base + e]) : 0.f;
}

template <typename T, int E> __device__ void rows_amax(const T* x, long n, int rotate, float norm, float* amax) {
    int lane = threadIdx.x & 31;
    long warps = (long) gridDim.x * (blockDim.x >> 5), chunks = (n + 32 * E - 1) / (32 * E);
    float m = 0.f;
    for (long c = (long) blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); c < chunks; c += warps) {
        float v[E];
        load_rows<T, E>(x, c, n, lane, v);
        if (rotate) warp_hadamard<E>(v, lane);
#pragma unroll
        for (int e = 0; e < E; e++) m = fmaxf(m, fabsf(v[e] * norm));
    }
    m = warp_max_abs(m);
    if (lane == 0) atomic_max_abs(amax, m);
}

template <typename T, int E> __device__ void rows_quantize(const T* x, long n, int rotate, float norm, const float* amax_src,
        int amax_count, float* amax_record, float max_fp8, int e5m2, unsigned char* out, float* scale_inv) {
    int lane = threadIdx.x & 31;
    float scale = quant_scale(amax_src, amax_count, max_fp8), m = 0.f;
    if (blockIdx.x == 0 && threadIdx.x == 0) *scale_inv = 1.f / scale;
    long warps = (long) gridDim.x * (blockDim.x >> 5), chunks = (n + 32 * E - 1) / (32 * E);
    for (long c = (long) blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); c < chunks; c += warps) {
        float v[E];
        load_rows<T, E>(x, c, n, lane, v);
        if (rotate) warp_hadamard<E>(v, lane);
        long base = c * 32 * E + (long) lane * E;
#pragma unroll
        for (int e = 0; e < E; e++) {
            m = fmaxf(m, fabsf(v[e] * norm));
            if (base + e < n) out[base + e] = to_fp8(v[e] * norm * scale, e5m2);
        }
    }
    if (amax_record) {
        m = warp_max_abs(m);
        if (lane == 0) atomic_max_abs(amax_record, m);
    }
}

// ---- cols: x (R,C) contracted over R, written as (C,R); a block takes 32*E rows x 32 columns ----------------------

template <typename T, int E> __device__ __forceinline__ void load_tile(const T* x, int r, int c, float* tile) {
    long r0 = (long) blockIdx.y * 32 * E;
    int c0 = blockIdx.x * 32;
    for (int i = threadIdx.x; i < 32 * E * 32; i += blockDim.x) {
        int tr = i / 32, tc = i % 32;
        long row = r0 + tr;
        tile[tr * 33 + tc] = row < r && c0 + tc < c ? to_float(x[row * c + c0 + tc]) : 0.f;
    }
    __syncthreads();
}

template <typename T, int E> __device__ void cols_amax(const T* x, int r, int c, int rotate, float norm, float* amax) {
    extern __shared__ float tile[];
    load_tile<T, E>(x, r, c, tile);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    float m = 0.f;
    for (int j = warp; j < 32; j += nwarps) {
        float v[E];
#pragma unroll
        for (int e = 0; e < E; e++) v[e] = tile[(lane * E + e) * 33 + j];
        if (rotate) warp_hadamard<E>(v, lane);
#pragma unroll
        for (int e = 0; e < E; e++) m = fmaxf(m, fabsf(v[e] * norm));
    }
    m = warp_max_abs(m);
    if (lane == 0) atomic_max_abs(amax, m);
}

template <typename T, int E> __device__ void cols_quantize(const T* x, int r, int c, int rotate, float norm, const float* amax_src,
        int amax_count, float* amax_record, float max_fp8, int e5m2, unsigned char* out, float* scale_inv) {
    extern __shared__ float tile[];
    float scale = quant_scale(amax_src, amax_count, max_fp8), m = 0.f;
    if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) *scale_inv = 1.f / scale;
    load_tile<T, E>(x, r, c, tile);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    long r0 = (long) blockIdx.y * 32 * E;
    for (int j = warp; j < 32; j += nwarps) {
        int col = blockIdx.x * 32 + j;
        float v[E];
#pragma unroll
        for (int e = 0; e < E; e++) v[e] = tile[(lane * E + e) * 33 + j];
        if (rotate) warp_hadamard<E>(v, lane);
        if (col >= c) continue;
#pragma unroll
        for (int e = 0; e < E; e++) {
            long row = r0 + lane * E + e;
            m = fmaxf(m, fabsf(v[e] * norm)); // padding rows and columns hold zeros
            if (row < r) out[(long) col * r + row] = to_fp8(v[e] * norm * scale, e5m2);
        }
    }
    if (amax_record) {
        m = warp_max_abs(m);
        if (lane == 0) atomic_max_abs(amax_record, m);
    }
}

#define FP8_KERNELS(T, S, E) \
    extern "C" __global__ void fp8_rows_amax_##S##_##E(const T* x, long n, int rotate, float norm, float* amax) \
        { rows_amax<T, E>(x, n, rotate, norm, amax); } \
    extern "C" __global__ void fp8_rows_quantize_##S##_##E(const T* x, long n, int rotate, float norm, const float* amax_src, \
        int amax_count, float* amax_record, float max_fp8, int e5m2, unsigned char* out, float* scale_inv) \
        { rows_quantize<T, E>(x, n, rotate, norm, amax_src, amax_count, amax_record, max_fp8, e5m2, out, scale_inv); } \
    extern "C" __global__ void fp8_cols_amax_##S##_##E(const T* x, int r, int c, int rotate, float norm, float* amax) \
        { cols_amax<T, E>(x, r, c, rotate, norm, amax); } \
    extern "C" __global__ void fp8_cols_quantize_##S##_##E(const T* x, int r, int c, int rotate, float norm, const float* amax_src, \
        int amax_count, float* amax_record, float max_fp8, int e5m2, unsigned char* out, float* scale_inv) \
        { cols_quantize<T, E>(x, r, c, rotate, norm, amax_src, amax_count, amax_record, max_fp8, e5m2, out, scale_inv); }
#define FP8_FOR_E(T, S) FP8_KERNELS(T, S, 1) FP8_KERNELS(T, S, 2) FP8_KERNELS(T, S, 4) FP8_KERNELS(T, S, 8)
FOR_TYPES(FP8_FOR_E)

// A new step for each amax history (one slot per table entry of optimizer.cu's kind, p = the history of n floats):
// every slot moves one place back, the oldest drops out, slot 0 starts again at zero.
struct History { float* h; void* unused[3]; long n; double unused_decay; };
extern "C" __global__ void fp8_roll_histories(const History* histories, int count) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    float* h = histories[i].h;
    for (long j = histories[i].n - 1; j > 0; j--) h[j] = h[j - 1];
    h[0] = 0.f;
}

// Codes of the values in x, at scale 1 (tests compare them with Fp8.encode bit for bit).
extern "C" __global__ void fp8_encode(const float* x, long n, int e5m2, unsigned char* out) {
    GRID_STRIDE(i, n) out[i] = to_fp8(x[i], e5m2);
}
