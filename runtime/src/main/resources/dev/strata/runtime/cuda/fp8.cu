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

// Two codes in one instruction: lo in the low byte, hi in the high byte.
__device__ __forceinline__ unsigned to_fp8x2(float lo, float hi, int e5m2) {
    unsigned short r;
    if (e5m2) asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    else asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    return r;
}

// v <- H v over one thread's N values, unnormalised.
template <int N> __device__ __forceinline__ void register_hadamard(float (&v)[N]) {
#pragma unroll
    for (int h = 1; h < N; h <<= 1)
#pragma unroll
        for (int e = 0; e < N; e++)
            if ((e & h) == 0) { float a = v[e], b = v[e + h]; v[e] = a + b; v[e + h] = a - b; }
}

// v <- H v over the warp's 32*E elements, unnormalised.
template <int E> __device__ __forceinline__ void warp_hadamard(float (&v)[E], int lane) {
    register_hadamard<E>(v);
#pragma unroll
    for (int m = 1; m < 32; m <<= 1) {
        float sign = (lane & m) ? -1.f : 1.f; // o - v or v + o in one exact fma
#pragma unroll
        for (int e = 0; e < E; e++) v[e] = fmaf(v[e], sign, __shfl_xor_sync(FULL, v[e], m));
    }
}

// Amaxes keep NaN (max.NaN; fmaxf would drop it) and inf, so a non-finite value anywhere shows in the amax and the
// layer that met it can be named. An amax is |v| or the canonical NaN, never negative: its bits order as unsigned
// ints (NaN > inf > finite) for atomicMax.
__device__ __forceinline__ float max_abs(float m, float v) {
    float r;
    asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(m), "f"(fabsf(v)));
    return r;
}

__device__ __forceinline__ float warp_max_abs(float m) {
    for (int o = 16; o > 0; o >>= 1) m = max_abs(m, __shfl_xor_sync(FULL, m, o));
    return m;
}

// amax >= 0, so its float bits order as unsigned ints.
__device__ __forceinline__ void atomic_max_abs(float* amax, float m) { atomicMax((unsigned*) amax, __float_as_uint(m)); }

// A non-finite amax in the history (a step that was skipped) does not count.
__device__ __forceinline__ float quant_scale(const float* amax_src, int amax_count, float max_fp8) {
    float a = 0.f;
    for (int i = 0; i < amax_count; i++) if (amax_src[i] < INFINITY) a = fmaxf(a, amax_src[i]);
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
        for (int e = 0; e < E; e++) m = max_abs(m, v[e] * norm);
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
            m = max_abs(m, v[e] * norm);
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
        for (int e = 0; e < E; e++) m = max_abs(m, v[e] * norm);
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
            m = max_abs(m, v[e] * norm); // padding rows and columns hold zeros
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

// ---- Hadamard blocks over 256: the part across sub-blocks --------------------------------------------------------
// For a block of n = M*S (Sylvester order) H_n = (H_M (x) I_S)(I_M (x) H_S), and the factors commute: the quantize
// kernels rotate each run of S consecutive values, these kernels mix the M values at stride S within each block of
// M*S along the contracted dimension (over C, or over R when over_rows), into f32 y, scaled by norm. In place is
// safe: a thread reads and writes only its own M values. Consecutive threads touch consecutive addresses.
template <typename T, int M> __device__ void cross_hadamard(const T* x, float* y, int r, int c, int over_rows, int s, float norm) {
    long k = over_rows ? r : c, lines = over_rows ? c : r, groups = k / M;
    GRID_STRIDE(t, lines * groups) {
        long line = over_rows ? t % lines : t / groups, g = over_rows ? t / lines : t % groups;
        long k0 = g / s * M * s + g % s;
        float v[M];
#pragma unroll
        for (int e = 0; e < M; e++) {
            long kk = k0 + (long) e * s;
            v[e] = to_float(x[over_rows ? kk * c + line : line * c + kk]);
        }
        register_hadamard<M>(v);
#pragma unroll
        for (int e = 0; e < M; e++) {
            long kk = k0 + (long) e * s;
            y[over_rows ? kk * c + line : line * c + kk] = v[e] * norm;
        }
    }
}

#define FP8_CROSS(T, S, M) \
    extern "C" __global__ void fp8_cross_hadamard_##S##_##M(const T* x, float* y, int r, int c, int over_rows, int s, float norm) \
        { cross_hadamard<T, M>(x, y, r, c, over_rows, s, norm); }
#define FP8_CROSS_FOR_M(T, S) FP8_CROSS(T, S, 2) FP8_CROSS(T, S, 4) FP8_CROSS(T, S, 8) FP8_CROSS(T, S, 16) FP8_CROSS(T, S, 32) FP8_CROSS(T, S, 64)
FOR_TYPES(FP8_CROSS_FOR_M)

// ---- both: x (R,C) into its rows codes (R,C) and its cols codes (C,R) in one read ---------------------------------
// x and dy feed two GEMMs each (and the weight feeds two), so both operands are made from one read of the source.
// The grid is persistent: each block walks 128 x 128 tiles of x, held in shared memory as bf16, and rotates and
// quantizes the tile's rows and its columns. Hadamard blocks up to 128 fit in a tile's line; each side has its own
// block (0: none), scaling (per tensor or per line), amax record, format and output.
//
// The rotation runs on tensor cores: H_128 = H_4 (x) H_32 and H_32 = H_2 (x) H_16, so a warp multiplies 16 lines by
// H_32 (by I_16 when unrotated) with mma.sync, two 16-wide sub-blocks accumulated into each output, and the H_4 part
// is two butterfly stages between the 32-wide pairs, in registers. bf16 sources are exact as mma operands; their
// tiles come in by cp.async, the next one in flight while the current one is worked on. f32 sources (the weights)
// are split into bf16 hi + lo tiles (x = hi + lo to 2^-17) whose products accumulate in f32, so codes match f32
// arithmetic. Butterflies across lanes (shuffles) had made these kernels issue-bound.

#define TILE 128
#define TILE_STRIDE 136    // bf16 a tile row: 272 bytes, 16-byte aligned for cp.async and ldmatrix; the eight rows an
                           // ldmatrix phase reads fall on different banks
#define STAGE_STRIDE 144   // bytes a line of codes in the staging area
#define TILE_BYTES (TILE * TILE_STRIDE * 2)

// Starts copying the tile at rows r0.., columns c0.. of x into shared memory (rows `stride` elements apart), 16 bytes
// a copy, zeros outside x (C is a multiple of 8, so a copy is wholly inside or outside). Consecutive threads copy
// consecutive parts of a row, 16 rows at a time: blocks of 256 threads for bf16, 512 for f32. The pointer walks down
// the rows so the eight copies cost an add each, not 64-bit index arithmetic.
template <typename T> __device__ __forceinline__ void copy_square(const T* x, int R, int C, long r0, int c0, T* tile, int stride) {
    const int per_row = TILE * sizeof(T) / 16, e = 16 / sizeof(T); // copies a row, elements a copy
    int tr = threadIdx.x / per_row, col = e * (threadIdx.x % per_row), rows_in = R - (int) r0 - tr; // this thread's rows in x: 16i < rows_in
    bool cols_in = c0 + col < C;
    const T* src = x + (r0 + tr) * C + c0 + col;
    T* dst = tile + tr * stride + col;
#pragma unroll
    for (int i = 0; i < TILE / 16; i++, src += 16L * C) {
        bool inside = cols_in && 16 * i < rows_in;
        copy16_async(dst + 16 * i * stride, inside ? src : x, inside);
    }
}

// The f32 tile at the start of `tile` (unpadded, as copy_square left it), split in place into bf16 hi (tile)
// and lo (tile + TILE * TILE_STRIDE): x = hi + lo to 2^-17. The 512 threads read all of it, then write.
__device__ __forceinline__ void split_square(bf16* tile) {
    int col = 4 * (threadIdx.x % 32);
    float4 v[TILE / 16];
#pragma unroll
    for (int i = 0; i < TILE / 16; i++) v[i] = *(const float4*) ((const float*) tile + (threadIdx.x / 32 + 16 * i) * TILE + col);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < TILE / 16; i++) {
        float e[4] = {v[i].x, v[i].y, v[i].z, v[i].w};
        unsigned hi[2], lo[2];
#pragma unroll
        for (int k = 0; k < 2; k++) {
            hi[k] = bf16x2(e[2 * k], e[2 * k + 1]);
            float h0 = __uint_as_float(hi[k] << 16), h1 = __uint_as_float(hi[k] & 0xffff0000u);
            // a non-finite value is all hi, so it stays what it was (inf - inf would make it NaN)
            lo[k] = bf16x2(fabsf(h0) < INFINITY ? e[2 * k] - h0 : 0.f, fabsf(h1) < INFINITY ? e[2 * k + 1] - h1 : 0.f);
        }
        int at = (threadIdx.x / 32 + 16 * i) * TILE_STRIDE + col;
        *(uint2*) (tile + at) = make_uint2(hi[0], hi[1]);
        *(uint2*) (tile + TILE * TILE_STRIDE + at) = make_uint2(lo[0], lo[1]);
    }
    __syncthreads();
}

// The scaling of one side of the tiles (block < 0: the side is not wanted, as for a frozen weight's inputs): per line (vec: the amax pass records each line's amax into record[line],
// the quantize pass scales each line by src[line]) or per tensor (the amax pass records the tensor's amax into
// record[0]; the quantize pass scales by the max of src[0 .. count) and records the tensor's amax into record, an
// amax history, which may be null).
struct Side { int block; float norm; int vec; const float* src; int count; float* record; float max_fp8; int e5m2; unsigned char* out; float* scale_inv; };

// The per-tensor scale (0 where the side scales per line), found by every thread of the side; `writer` (one thread
// of the grid) writes its inverse.
template <bool QUANTIZE> __device__ __forceinline__ float tensor_scale(const Side& d, bool writer) {
    if (!QUANTIZE || d.vec || d.block < 0) return 0.f;
    float scale = quant_scale(d.src, d.count, d.max_fp8);
    if (writer) *d.scale_inv = 1.f / scale;
    return scale;
}

// Fragments of mma.m16n8k16 (lane = 4g + t): A holds (g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..); B holds
// (k = 2t..2t+1, n = g), (k = 2t+8.., n = g); C holds (g, 2t..2t+1), (g+8, 2t..2t+1).
__device__ __forceinline__ void mma_bf16(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two bf16 entries of H_16 (or I_16 when !rotate): rows k, k+1 of column n; the Sylvester sign is (-1)^popcount(k & n).
__device__ __forceinline__ unsigned h16_pair(int k, int n, bool rotate) {
    unsigned lo, hi;
    if (rotate) {
        lo = __popc(k & n) & 1 ? 0xbf80u : 0x3f80u;
        hi = __popc((k + 1) & n) & 1 ? 0xbf80u : 0x3f80u;
    } else {
        lo = k == n ? 0x3f80u : 0u;
        hi = k + 1 == n ? 0x3f80u : 0u;
    }
    return lo | hi << 16;
}

// This lane's B fragments of the two 8-column halves of H_16 (I_16 when !rotate), and their negatives (for H_32).
// The columns are permuted so that lane t's outputs, columns 2t, 2t + 1 of each half, are elements 4t .. 4t + 3 of
// the sub-block: a lane's four codes of a line are one 32-bit word of staging. Output column c of half n is element
// 4 (c >> 1) + 2n + (c & 1).
struct H16 {
    unsigned b[2][2], neg[2][2];
    __device__ H16(bool rotate) {
        int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
        for (int n = 0; n < 2; n++) {
            int col = 4 * (g >> 1) + 2 * n + (g & 1);
            b[n][0] = h16_pair(2 * t, col, rotate);
            b[n][1] = h16_pair(2 * t + 8, col, rotate);
            for (int k = 0; k < 2; k++) neg[n][k] = b[n][k] ^ 0x80008000u;
        }
    }
};

// The A fragment of 16 lines x 16 elements at sub-block j, part p: rows (ldmatrix), or the tile's columns (.trans).
template <bool COLS> __device__ __forceinline__ void load_a(const bf16* tile, int p, int j, int l0, int lane, unsigned (&a)[4]) {
    // rows: lane L addresses line l0 + (L & 15), elements 16j + 8 (L >> 4); cols: tile row 16j + (L & 7) + 8 (L >> 4), column l0 + 8 ((L >> 3) & 1)
    int row = COLS ? 16 * j + (lane & 7) + 8 * (lane >> 4) : l0 + (lane & 15);
    int col = COLS ? l0 + 8 * ((lane >> 3) & 1) : 16 * j + 8 * (lane >> 4);
    unsigned addr = (unsigned) __cvta_generic_to_shared(tile + p * TILE * TILE_STRIDE + row * TILE_STRIDE + col);
    if (COLS) asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3]) : "r"(addr));
    else asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3]) : "r"(addr));
}

// One side of a tile (PARTS bf16 tiles summed: x, or hi + lo): warp w of the side takes the 16 lines 16w.. as the A
// operand and writes its codes through `stage`, 16 lines of staging of its own.
// Rotated, each pair of sub-blocks j, j + 1 is multiplied by H_32 = H_2 (x) H_16 on the tensor cores (sub-block j's
// product plus or minus j + 1's, accumulated in the MMA), then butterflies across the pairs make H_64 or H_128;
// unrotated, each sub-block is multiplied by I_16. Lane (g, t) ends with line 16w + g (+ 8 in c[2], c[3]) at
// elements 16j + 4t + 2n, + 1 of acc[j][n]: measured and, with QUANTIZE, quantized. Codes go through staging, a
// 32-bit word a lane and line, so global stores are 16 bytes and coalesce.
template <bool QUANTIZE, bool COLS, int BLOCK, int PARTS> __device__ __forceinline__ void mma_side(const bf16* tile, int R, int C, long r0, int c0,
        const Side& d, const H16& h16, float scale, float& m, int w, unsigned char* stage) {
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, l0 = 16 * w;
    long first = COLS ? c0 : r0, lines = COLS ? C : R; // this tile's first line in the tensor, and the tensor's lines
    int valid = COLS ? (int) (R - r0) : C - c0;          // elements of a line inside the tensor, counted from this tile
    bool writes_scales = COLS ? r0 == 0 : c0 == 0;        // one tile along each line writes its scale
    float acc[8][2][4];
#pragma unroll
    for (int j = 0; j < 8; j++)
#pragma unroll
        for (int n = 0; n < 2; n++) acc[j][n][0] = acc[j][n][1] = acc[j][n][2] = acc[j][n][3] = 0.f;
#pragma unroll
    for (int j = 0; j < 8; j += 2)
#pragma unroll
        for (int p = 0; p < PARTS; p++) {
            unsigned a0[4], a1[4];
            load_a<COLS>(tile, p, j, l0, lane, a0);
            load_a<COLS>(tile, p, j + 1, l0, lane, a1);
#pragma unroll
            for (int n = 0; n < 2; n++) {
                if (BLOCK >= 32) {
                    mma_bf16(acc[j][n], a0, h16.b[n][0], h16.b[n][1]);
                    mma_bf16(acc[j][n], a1, h16.b[n][0], h16.b[n][1]);
                    mma_bf16(acc[j + 1][n], a0, h16.b[n][0], h16.b[n][1]);
                    mma_bf16(acc[j + 1][n], a1, h16.neg[n][0], h16.neg[n][1]);
                } else {
                    mma_bf16(acc[j][n], a0, h16.b[n][0], h16.b[n][1]);
                    mma_bf16(acc[j + 1][n], a1, h16.b[n][0], h16.b[n][1]);
                }
            }
        }
#pragma unroll
    for (int h = 2; 32 * h <= BLOCK; h <<= 1) // H_4 over the pairs: blocks of 64, 128
#pragma unroll
        for (int j = 0; j < 8; j++)
            if ((j & h) == 0)
#pragma unroll
                for (int n = 0; n < 2; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) { float p = acc[j][n][e], q = acc[j | h][n][e]; acc[j][n][e] = p + q; acc[j | h][n][e] = p - q; }
    float lm[2] = {0.f, 0.f}; // lines g and g + 8
#pragma unroll
    for (int j = 0; j < 8; j++)
#pragma unroll
        for (int n = 0; n < 2; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) lm[e >> 1] = max_abs(lm[e >> 1], acc[j][n][e]);
#pragma unroll
    for (int half = 0; half < 2; half++) {
        lm[half] *= d.norm; // rounding is monotone: the max of the scaled values
        m = max_abs(m, lm[half]);
        if (!QUANTIZE && d.vec) { // the line's four lanes agree on its amax
            lm[half] = max_abs(lm[half], __shfl_xor_sync(FULL, lm[half], 1));
            lm[half] = max_abs(lm[half], __shfl_xor_sync(FULL, lm[half], 2));
            long line = first + l0 + g + 8 * half;
            if (t == 0 && line < lines) atomic_max_abs(d.record + line, lm[half]);
        }
    }
    if (QUANTIZE) {
#pragma unroll
        for (int half = 0; half < 2; half++) {
            long line = first + l0 + g + 8 * half;
            float s = d.vec ? (line < lines ? quant_scale(d.src + line, 1, d.max_fp8) : 1.f) : scale;
            if (d.vec && writes_scales && t == 0 && line < lines) d.scale_inv[line] = 1.f / s;
            s *= d.norm;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const float* lo = acc[j][0] + 2 * half, * hi = acc[j][1] + 2 * half;
                *(unsigned*) (stage + (g + 8 * half) * STAGE_STRIDE + 16 * j + 4 * t) =
                        to_fp8x2(lo[0] * s, lo[1] * s, d.e5m2) | to_fp8x2(hi[0] * s, hi[1] * s, d.e5m2) << 16;
            }
        }
        __syncwarp();
        // 16 lines of 128 codes, eight 16-byte parts a line: lane L stores part L & 7 of lines L / 8, + 4, + 8, + 12
        int ld = COLS ? R : C, part = 16 * (lane & 7), ln = lane >> 3, lines_in = (int) (lines - first) - l0 - ln;
        unsigned char* out = d.out + (first + l0 + ln) * ld + (COLS ? r0 : c0) + part;
        const unsigned char* from = stage + ln * STAGE_STRIDE + part;
#pragma unroll
        for (int i = 0; i < 4; i++, out += 4L * ld)
            if (part < valid && 4 * i < lines_in) *(uint4*) out = *(const uint4*) (from + 4 * i * STAGE_STRIDE);
        __syncwarp(); // the staging area is free for the other side
    }
}

// The tensor's amax from this warp's tiles: into the history, or the per-tensor amax pass.
template <bool QUANTIZE> __device__ __forceinline__ void record_tensor_amax(const Side& d, float m) {
    if (d.block >= 0 && (QUANTIZE || !d.vec)) {
        m = warp_max_abs(m);
        if ((threadIdx.x & 31) == 0 && d.record) atomic_max_abs(d.record, m);
    }
}

template <bool QUANTIZE, bool COLS, int PARTS> __device__ __forceinline__ void tile_side(const bf16* tile, int R, int C, long r0, int c0,
        const Side& d, const H16& h16, float scale, float& m, int w, unsigned char* stage) {
    switch (d.block) { // the launch checked the block is one of these
        case 0: mma_side<QUANTIZE, COLS, 0, PARTS>(tile, R, C, r0, c0, d, h16, scale, m, w, stage); break;
        case 32: mma_side<QUANTIZE, COLS, 32, PARTS>(tile, R, C, r0, c0, d, h16, scale, m, w, stage); break;
        case 64: mma_side<QUANTIZE, COLS, 64, PARTS>(tile, R, C, r0, c0, d, h16, scale, m, w, stage); break;
        default: mma_side<QUANTIZE, COLS, 128, PARTS>(tile, R, C, r0, c0, d, h16, scale, m, w, stage); break;
    }
}

// QUANTIZE = false records the two sides' amaxes only (current scaling's first pass). A bf16 source: blocks of 256
// threads with two bf16 tiles (this one and the next, copying) and 16 lines of staging a warp, 88 KB, so two blocks
// an SM; each warp does its 16 lines of the rows side, then of the columns side.
template <bool QUANTIZE> __device__ void both_bf16(const bf16* x, int R, int C, const Side& rows, const Side& cols) {
    extern __shared__ __align__(16) unsigned char shared[];
    bf16* tiles = (bf16*) shared;
    int warp = threadIdx.x >> 5;
    unsigned char* stage = shared + 2 * TILE_BYTES + warp * 16 * STAGE_STRIDE;
    int tiles_c = (C + TILE - 1) / TILE, count = tiles_c * ((R + TILE - 1) / TILE), t = blockIdx.x; // 32-bit: 64-bit division is a slow call
    bool writer = blockIdx.x == 0 && threadIdx.x == 0;
    float scale_r = tensor_scale<QUANTIZE>(rows, writer), scale_c = tensor_scale<QUANTIZE>(cols, writer), m_r = 0.f, m_c = 0.f;
    const H16 h16_r(rows.block > 0), h16_c(cols.block > 0);
    if (t < count) copy_square(x, R, C, (long) (t / tiles_c) * TILE, t % tiles_c * TILE, tiles, TILE_STRIDE);
    copy_commit();
    for (int buffer = 0; t < count; t += gridDim.x, buffer ^= 1) {
        int next = t + gridDim.x, c0 = t % tiles_c * TILE;
        long r0 = (long) (t / tiles_c) * TILE;
        copy_wait<0>();
        __syncthreads(); // one barrier a tile: this tile has landed, and every warp is done with the other buffer
        if (next < count) copy_square(x, R, C, (long) (next / tiles_c) * TILE, next % tiles_c * TILE, tiles + (buffer ^ 1) * TILE * TILE_STRIDE, TILE_STRIDE);
        copy_commit(); // the next tile streams in while this one is worked on
        const bf16* tile = tiles + buffer * TILE * TILE_STRIDE;
        if (rows.block >= 0) tile_side<QUANTIZE, false, 1>(tile, R, C, r0, c0, rows, h16_r, scale_r, m_r, warp, stage);
        if (cols.block >= 0) tile_side<QUANTIZE, true, 1>(tile, R, C, r0, c0, cols, h16_c, scale_c, m_c, warp, stage);
    }
    record_tensor_amax<QUANTIZE>(rows, m_r);
    record_tensor_amax<QUANTIZE>(cols, m_c);
}

// An f32 source (the weights): blocks of 512 threads, one an SM, with two buffers of a hi and a lo tile and 16 lines
// of staging a warp, 168 KB. The next f32 tile streams into the other buffer (64 KB of f32 fit in 68 KB of hi and
// lo) while this one is split in place and worked on: warps 0-7 do the rows side and warps 8-15 the columns side at
// the same time. (113 us for a 14336 x 4096 weight in ncu, 1.4x its floor; about as fast as loading each f32 tile
// into registers and splitting it in one go, but with the copies off the chain.)
template <bool QUANTIZE> __device__ void both_f32(const float* x, int R, int C, const Side& rows, const Side& cols) {
    extern __shared__ __align__(16) unsigned char shared[];
    bf16* tiles = (bf16*) shared;
    int warp = threadIdx.x >> 5, w = warp & 7;
    bool cols_side = warp >= 8;
    unsigned char* stage = shared + 4 * TILE_BYTES + warp * 16 * STAGE_STRIDE;
    int tiles_c = (C + TILE - 1) / TILE, count = tiles_c * ((R + TILE - 1) / TILE), t = blockIdx.x;
    const Side d = cols_side ? cols : rows;
    float scale = tensor_scale<QUANTIZE>(d, blockIdx.x == 0 && w == 0 && (threadIdx.x & 31) == 0), m = 0.f;
    const H16 h16(d.block > 0);
    if (t < count) copy_square(x, R, C, (long) (t / tiles_c) * TILE, t % tiles_c * TILE, (float*) tiles, TILE);
    copy_commit();
    for (int buffer = 0; t < count; t += gridDim.x, buffer ^= 1) {
        int next = t + gridDim.x, c0 = t % tiles_c * TILE;
        long r0 = (long) (t / tiles_c) * TILE;
        bf16* tile = tiles + buffer * 2 * TILE * TILE_STRIDE;
        copy_wait<0>();
        __syncthreads(); // this tile has landed, and every warp is done with the other buffer
        if (next < count) copy_square(x, R, C, (long) (next / tiles_c) * TILE, next % tiles_c * TILE, (float*) (tiles + (buffer ^ 1) * 2 * TILE * TILE_STRIDE), TILE);
        copy_commit();
        split_square(tile);
        if (d.block >= 0) {
            if (cols_side) tile_side<QUANTIZE, true, 2>(tile, R, C, r0, c0, d, h16, scale, m, w, stage);
            else tile_side<QUANTIZE, false, 2>(tile, R, C, r0, c0, d, h16, scale, m, w, stage);
        }
    }
    record_tensor_amax<QUANTIZE>(d, m);
}

#define FP8_BOTH(T, S, THREADS, BLOCKS_PER_SM) \
    extern "C" __global__ void __launch_bounds__(THREADS, BLOCKS_PER_SM) fp8_both_amax_##S(const T* x, int r, int c, int block_r, float norm_r, int vec_r, \
        float* amax_r, int block_c, float norm_c, int vec_c, float* amax_c) \
        { both_##S<false>(x, r, c, Side{block_r, norm_r, vec_r, 0, 0, amax_r, 0.f, 0, 0, 0}, Side{block_c, norm_c, vec_c, 0, 0, amax_c, 0.f, 0, 0, 0}); } \
    extern "C" __global__ void __launch_bounds__(THREADS, BLOCKS_PER_SM) fp8_both_quantize_##S(const T* x, int r, int c, int block_r, float norm_r, int vec_r, \
        const float* src_r, int count_r, float* record_r, float max_r, int e5m2_r, unsigned char* out_r, float* scale_inv_r, \
        int block_c, float norm_c, int vec_c, \
        const float* src_c, int count_c, float* record_c, float max_c, int e5m2_c, unsigned char* out_c, float* scale_inv_c) \
        { both_##S<true>(x, r, c, Side{block_r, norm_r, vec_r, src_r, count_r, record_r, max_r, e5m2_r, out_r, scale_inv_r}, \
                         Side{block_c, norm_c, vec_c, src_c, count_c, record_c, max_c, e5m2_c, out_c, scale_inv_c}); }
FP8_BOTH(bf16, bf16, 256, 2)
FP8_BOTH(float, f32, 512, 1)

// Per-row scales for FP8 GEMMs cuBLASLt will not scale per row itself (it refuses some output types and shapes):
// the GEMM ran at unit scales into the f32 product p (m,n), and c = sa[i]*sb[j]*p + beta*c.
// Rows i stride over the grid's y, eight columns a thread (n is a multiple of 16), no division per element.
template <typename T> __device__ void outer_scale(const float* p, const float* sa, const float* sb, int m, int n, float beta, T* c) {
    int n8 = n / 8;
    for (int i = blockIdx.y; i < m; i += gridDim.y) {
        float a = sa[i];
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < n8; j += gridDim.x * blockDim.x) {
            long at = (long) i * n8 + j;
            Vec8<float> x = load8(p, at), b = load8(sb, j);
            Vec8<T> r;
            if (beta != 0.f) r = load8(c, at);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                float v = a * b.v[e] * x.v[e];
                r.v[e] = from_float<T>(beta == 0.f ? v : v + beta * to_float(r.v[e]));
            }
            store8(c, at, r);
        }
    }
}
#define FP8_OUTER_SCALE(T, S) \
    extern "C" __global__ void fp8_outer_scale_##S(const float* p, const float* sa, const float* sb, int m, int n, float beta, T* c) \
        { outer_scale<T>(p, sa, sb, m, n, beta, c); }
FOR_TYPES(FP8_OUTER_SCALE)

// A new step for each amax history (one slot per history, p = its n floats): every entry moves one place back, the
// oldest drops out, entry 0 starts again at zero. A warp takes a history 32 entries at a time from the top, so a
// history of 1024 (Transformer Engine's default length) costs 32 round trips to memory, not 1024: each lane reads
// its entry's predecessor before any lane of the group writes, and a lower group reads only entries below those
// written above it.
extern "C" __global__ void fp8_roll_histories(const Slot* histories, int count) {
    int i = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x & 31;
    if (i >= count) return;
    float* h = histories[i].p;
    for (long top = histories[i].n - 1; top >= 0; top -= 32) {
        long j = top - lane;
        float previous = j > 0 ? h[j - 1] : 0.f;
        __syncwarp();
        if (j >= 0) h[j] = previous;
    }
}

// Codes of the values in x, at scale 1 (tests compare them with Fp8.encode bit for bit).
extern "C" __global__ void fp8_encode(const float* x, long n, int e5m2, unsigned char* out) {
    GRID_STRIDE(i, n) out[i] = to_fp8(x[i], e5m2);
}
