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
// A block of 256 threads copies a 128 x 128 tile into shared memory with all its loads in flight at once, then
// rotates and quantizes the tile's rows, then its columns. A line (row or column) of 128 belongs to four lanes
// (l, l ^ 8, l ^ 16, l ^ 24): lane quarter h holds the 32 elements i = (s & 7) | h << 3 | (s >> 3) << 5, s = 0..31,
// so the Hadamard butterflies run in registers except two shuffle stages. The tile keeps the source's type: an f32
// tile (129-float rows, every shared access conflict-free) leaves room for three blocks per SM, a bf16 tile (130
// elements a row, read two at a time along rows) for four. Hadamard blocks up to 128 fit in a line; each side has
// its own block (0: none), scaling (per tensor or per line), amax record, format and output.

#define TILE 128
#define LINE_PART 32

template <typename T> struct TileStride;
template <> struct TileStride<float> { static constexpr int value = 129; };
template <> struct TileStride<bf16> { static constexpr int value = 130; };

__device__ __forceinline__ float pick(const float (&v)[4], int e) { return e == 0 ? v[0] : e == 1 ? v[1] : e == 2 ? v[2] : v[3]; }

__device__ __forceinline__ void load4(const float* p, float (&v)[4]) {
    float4 f = *(const float4*) p;
    v[0] = f.x; v[1] = f.y; v[2] = f.z; v[3] = f.w;
}
__device__ __forceinline__ void load4(const bf16* p, float (&v)[4]) {
    uint2 u = *(const uint2*) p;
    v[0] = __uint_as_float(u.x << 16); v[1] = __uint_as_float(u.x & 0xffff0000u);
    v[2] = __uint_as_float(u.y << 16); v[3] = __uint_as_float(u.y & 0xffff0000u);
}

__device__ __forceinline__ int line_index(int s, int h) { return (s & 7) | (h << 3) | ((s >> 3) << 5); }

// The tile's rows r0.., columns c0.. (zeros outside x); warp w copies rows w, w+8, .., four columns a lane.
__device__ __forceinline__ void load_square(const float* x, int R, int C, long r0, int c0, float* tile) {
    const int TILE_STRIDE = TileStride<float>::value;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, col = c0 + 4 * lane;
    float v[TILE / 8][4];
#pragma unroll
    for (int b = 0; b < TILE / 8; b++) { // every load first, then every store
        long row = r0 + warp + 8 * b;
        v[b][0] = v[b][1] = v[b][2] = v[b][3] = 0.f;
        if (row < R && col < C) load4(x + row * C + col, v[b]);
    }
#pragma unroll
    for (int b = 0; b < TILE / 8; b++)
#pragma unroll
        for (int s = 0; s < 4; s++) { // lanes 8 apart store different elements first: no bank conflicts
            int e = (s + (lane >> 3)) & 3;
            tile[(warp + 8 * b) * TILE_STRIDE + 4 * lane + e] = pick(v[b], e);
        }
}

__device__ __forceinline__ void load_square(const bf16* x, int R, int C, long r0, int c0, bf16* tile) {
    const int TILE_STRIDE = TileStride<bf16>::value;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, col = c0 + 4 * lane;
    uint2 u[TILE / 8];
#pragma unroll
    for (int b = 0; b < TILE / 8; b++) {
        long row = r0 + warp + 8 * b;
        u[b] = make_uint2(0, 0);
        if (row < R && col < C) u[b] = *(const uint2*) (x + row * C + col);
    }
#pragma unroll
    for (int b = 0; b < TILE / 8; b++)
#pragma unroll
        for (int j = 0; j < 2; j++) { // lanes 16 apart store different words first: no bank conflicts
            int w = (j + (lane >> 4)) & 1;
            *(unsigned*) (tile + (warp + 8 * b) * TILE_STRIDE + 4 * lane + 2 * w) = w ? u[b].y : u[b].x;
        }
}

// A lane's quarter of a line of the tile, as floats.
template <bool COLS> __device__ __forceinline__ void load_line(const float* tile, int line, int h, float (&v)[LINE_PART]) {
    const int TILE_STRIDE = TileStride<float>::value;
#pragma unroll
    for (int s = 0; s < LINE_PART; s++) v[s] = COLS ? tile[line_index(s, h) * TILE_STRIDE + line] : tile[line * TILE_STRIDE + line_index(s, h)];
}

template <bool COLS> __device__ __forceinline__ void load_line(const bf16* tile, int line, int h, float (&v)[LINE_PART]) {
    const int TILE_STRIDE = TileStride<bf16>::value;
    if (COLS) {
#pragma unroll
        for (int s = 0; s < LINE_PART; s++) v[s] = to_float(tile[line_index(s, h) * TILE_STRIDE + line]);
    } else { // elements s and s + 1 (s even) are neighbours in a row
#pragma unroll
        for (int s = 0; s < LINE_PART; s += 2) {
            unsigned w = *(const unsigned*) (tile + line * TILE_STRIDE + line_index(s, h));
            v[s] = __uint_as_float(w << 16);
            v[s + 1] = __uint_as_float(w & 0xffff0000u);
        }
    }
}

__device__ __forceinline__ void butterflies(float (&v)[LINE_PART], int b) {
#pragma unroll
    for (int s = 0; s < LINE_PART; s++)
        if ((s & b) == 0) { float p = v[s], q = v[s | b]; v[s] = p + q; v[s | b] = p - q; }
}

__device__ __forceinline__ void exchange(float (&v)[LINE_PART], int lanes, bool upper) {
    float sign = upper ? -1.f : 1.f; // o - v or v + o in one exact fma
#pragma unroll
    for (int s = 0; s < LINE_PART; s++) v[s] = fmaf(v[s], sign, __shfl_xor_sync(FULL, v[s], lanes));
}

// Unnormalised Hadamard of blocks of `block` (32..128; 0: none) along a line held by a lane quarter h.
__device__ __forceinline__ void hadamard_line(float (&v)[LINE_PART], int h, int block) {
    if (block == 0) return;
#pragma unroll
    for (int b = 1; b < 8; b <<= 1) butterflies(v, b); // index bits 0..2
    exchange(v, 8, h & 1);                              // bits 3, 4: across the four lanes
    exchange(v, 16, h & 2);
    if (block >= 64) butterflies(v, 8);                 // bit 5
    if (block >= 128) butterflies(v, 16);               // bit 6
}

// Codes of a quarter line, 8 consecutive ones per store: group g holds line elements 32g + 8h .. 32g + 8h + 7.
__device__ __forceinline__ void store_line(const float (&v)[LINE_PART], float scale, int e5m2, unsigned char* line, int h, int valid) {
#pragma unroll
    for (int g = 0; g < 4; g++) {
        if (32 * g + 8 * h >= valid) break;
        unsigned w[2];
#pragma unroll
        for (int j = 0; j < 2; j++) {
            int e = 8 * g + 4 * j;
            w[j] = to_fp8x2(v[e] * scale, v[e + 1] * scale, e5m2) | to_fp8x2(v[e + 2] * scale, v[e + 3] * scale, e5m2) << 16;
        }
        *(uint2*) (line + 32 * g + 8 * h) = make_uint2(w[0], w[1]);
    }
}

// One side of a tile: its lines (rows, or columns with COLS) rotated, measured and, with QUANTIZE, quantized. A
// side with vec set is scaled per line (one scale per row of its output: per token or per channel): the amax pass
// records each line's amax into record[line] and the quantize pass scales each line by src[line]. Otherwise the
// side is scaled per tensor: the amax pass records the tile's amax into record[0], and the quantize pass scales by
// the max of src[0 .. count) and records the tensor's amax into record (an amax history; may be null).
template <bool QUANTIZE, bool COLS, typename T> __device__ __forceinline__ void both_side(const T* tile, int R, int C, long r0, int c0,
        int block, float norm, int vec, const float* src, int count, float* record, float max_fp8, int e5m2, unsigned char* out, float* scale_inv) {
    int lane = threadIdx.x & 31, h = lane >> 3;
    long first = COLS ? c0 : r0, lines = COLS ? C : R; // this tile's first line in the tensor, and the tensor's lines
    int valid = COLS ? (int) (R - r0) : C - c0;          // elements of a line inside the tensor, counted from this tile
    bool writes_scales = COLS ? blockIdx.y == 0 : blockIdx.x == 0;
    float scale = 0.f, m = 0.f;
    if (QUANTIZE && !vec) {
        scale = quant_scale(src, count, max_fp8);
        if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) *scale_inv = 1.f / scale;
    }
    float v[LINE_PART];
    for (int line = 8 * (threadIdx.x >> 5) + (lane & 7); line < TILE; line += blockDim.x / 4) {
        load_line<COLS>(tile, line, h, v);
        hadamard_line(v, h, block);
        float lm = 0.f;
#pragma unroll
        for (int s = 0; s < LINE_PART; s++) lm = max_abs(lm, v[s]);
        lm *= norm; // rounding is monotone: the max of the scaled values
        m = max_abs(m, lm);
        bool inside = first + line < lines;
        if (!QUANTIZE && vec) { // the line's four lanes agree on its amax
            lm = max_abs(lm, __shfl_xor_sync(FULL, lm, 8));
            lm = max_abs(lm, __shfl_xor_sync(FULL, lm, 16));
            if (h == 0 && inside) atomic_max_abs(record + first + line, lm);
        }
        if (QUANTIZE && inside) {
            float s = vec ? quant_scale(src + first + line, 1, max_fp8) : scale;
            if (vec && writes_scales && h == 0) scale_inv[first + line] = 1.f / s;
            long offset = COLS ? (first + line) * R + r0 : (first + line) * C + c0;
            store_line(v, norm * s, e5m2, out + offset, h, valid);
        }
    }
    if (QUANTIZE || !vec) { // the tensor's amax: into the history, or the per-tensor amax pass
        m = warp_max_abs(m);
        if (lane == 0 && record) atomic_max_abs(record, m);
    }
}

// QUANTIZE = false records the two sides' amaxes only (current scaling's first pass).
template <typename T, bool QUANTIZE> __device__ void both(const T* x, int R, int C,
        int block_r, float norm_r, int vec_r, const float* src_r, int count_r, float* record_r, float max_r, int e5m2_r, unsigned char* out_r, float* scale_inv_r,
        int block_c, float norm_c, int vec_c, const float* src_c, int count_c, float* record_c, float max_c, int e5m2_c, unsigned char* out_c, float* scale_inv_c) {
    extern __shared__ __align__(16) unsigned char shared[];
    T* tile = (T*) shared; // (TILE, TileStride<T>): the source tile, unrotated
    long r0 = (long) blockIdx.y * TILE;
    int c0 = blockIdx.x * TILE;
    load_square(x, R, C, r0, c0, tile);
    __syncthreads();
    both_side<QUANTIZE, false>(tile, R, C, r0, c0, block_r, norm_r, vec_r, src_r, count_r, record_r, max_r, e5m2_r, out_r, scale_inv_r);
    both_side<QUANTIZE, true>(tile, R, C, r0, c0, block_c, norm_c, vec_c, src_c, count_c, record_c, max_c, e5m2_c, out_c, scale_inv_c);
}

#define FP8_BOTH(T, S, BLOCKS) \
    extern "C" __global__ void __launch_bounds__(256, BLOCKS) fp8_both_amax_##S(const T* x, int r, int c, int block_r, float norm_r, int vec_r, \
        float* amax_r, int block_c, float norm_c, int vec_c, float* amax_c) \
        { both<T, false>(x, r, c, block_r, norm_r, vec_r, 0, 0, amax_r, 0.f, 0, 0, 0, block_c, norm_c, vec_c, 0, 0, amax_c, 0.f, 0, 0, 0); } \
    extern "C" __global__ void __launch_bounds__(256, BLOCKS) fp8_both_quantize_##S(const T* x, int r, int c, int block_r, float norm_r, int vec_r, \
        const float* src_r, int count_r, float* record_r, float max_r, int e5m2_r, unsigned char* out_r, float* scale_inv_r, \
        int block_c, float norm_c, int vec_c, \
        const float* src_c, int count_c, float* record_c, float max_c, int e5m2_c, unsigned char* out_c, float* scale_inv_c) \
        { both<T, true>(x, r, c, block_r, norm_r, vec_r, src_r, count_r, record_r, max_r, e5m2_r, out_r, scale_inv_r, \
                        block_c, norm_c, vec_c, src_c, count_c, record_c, max_c, e5m2_c, out_c, scale_inv_c); }
FP8_BOTH(float, f32, 3)
FP8_BOTH(bf16, bf16, 4)

// Per-row scales for FP8 GEMMs cuBLASLt will not scale per row itself (it refuses some output types and shapes):
// the GEMM ran at unit scales into the f32 product p (m,n), and c = sa[i]*sb[j]*p + beta*c.
template <typename T> __device__ void outer_scale(const float* p, const float* sa, const float* sb, int m, int n, float beta, T* c) {
    GRID_STRIDE(i, (long) m * n) {
        float v = sa[i / n] * sb[i % n] * p[i];
        c[i] = from_float<T>(beta == 0.f ? v : v + beta * to_float(c[i]));
    }
}
#define FP8_OUTER_SCALE(T, S) \
    extern "C" __global__ void fp8_outer_scale_##S(const float* p, const float* sa, const float* sb, int m, int n, float beta, T* c) \
        { outer_scale<T>(p, sa, sb, m, n, beta, c); }
FOR_TYPES(FP8_OUTER_SCALE)

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
