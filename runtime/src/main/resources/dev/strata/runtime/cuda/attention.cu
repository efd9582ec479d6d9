// Causal attention with grouped-query heads for any head size D <= 128, on activations of type T (f32 or bf16)
// with f32 arithmetic, in the FlashAttention manner: online softmax, only the log-sum-exp of each row is kept,
// never a (T,T) matrix. One warp per query row (forward, dq) or key row (dk, dv); each lane holds head dimensions
// lane, lane+32, ... This is the reference path; bf16 with D = 64 runs on tensor cores in attention_mma.cu.
#include "common.cuh"

#define MAX_PER_LANE 4

template <typename T> __device__ __forceinline__ float dot_warp(const T* a, const T* b, int d) {
    float s = 0.f;
    for (int e = threadIdx.x & 31; e < d; e += 32) s += to_float(a[e]) * to_float(b[e]);
    return warp_sum(s);
}

// One warp's online-softmax pass of query row qi over keys first..last of k and v (B,Tk,Hkv,D), batch b and kv head
// kvh: writes the row of out and returns its log-sum-exp. Training's forward and generation's cached attention share it.
template <typename T> __device__ __forceinline__ float attend_row(const T* qi, const T* k, const T* v, T* oi, int b, int kvh,
                                                                   int tk, int hkv, int first, int last, int d, float scale) {
    int lane = threadIdx.x;
    float acc[MAX_PER_LANE] = {0.f, 0.f, 0.f, 0.f};
    float m = -INFINITY, l = 0.f;
    for (int j = first; j <= last; j++) {
        long kv = (((long) b * tk + j) * hkv + kvh) * d;
        float s = dot_warp(qi, k + kv, d) * scale;
        float mNew = fmaxf(m, s), corr = expf(m - mNew), p = expf(s - mNew);
        l = l * corr + p;
        for (int r = 0; r < MAX_PER_LANE; r++) {
            int e = lane + 32 * r;
            if (e < d) acc[r] = acc[r] * corr + p * to_float(v[kv + e]);
        }
        m = mNew;
    }
    for (int r = 0; r < MAX_PER_LANE; r++) {
        int e = lane + 32 * r;
        if (e < d) oi[e] = from_float<T>(acc[r] / l);
    }
    return m + logf(l);
}

// q (B,T,H,D), k and v (B,T,Hkv,D) -> out (B,T,H,D), lse (B,H,T); starts (B,T) where each position's document
// begins in its row, or null (one a row). grid (T, H, B), block 32.
template <typename T> __device__ void attention_fwd(const T* q, const T* k, const T* v, T* out, float* lse,
                                                    int t, int h, int hkv, int d, float scale, const int* starts) {
    int i = blockIdx.x, head = blockIdx.y, b = blockIdx.z, kvh = head / (h / hkv);
    long row = (((long) b * t + i) * h + head) * d;
    int first = starts ? starts[(long) b * t + i] : 0;
    float rowLse = attend_row(q + row, k, v, out + row, b, kvh, t, hkv, first, i, d, scale);
    if (threadIdx.x == 0) lse[((long) b * h + head) * t + i] = rowLse;
}
#define ATT_FWD(T, S) extern "C" __global__ void attention_fwd_##S(const T* q, const T* k, const T* v, T* out, float* lse, \
    int t, int h, int hkv, int d, float scale, const int* starts) { attention_fwd<T>(q, k, v, out, lse, t, h, hkv, d, scale, starts); }
FOR_TYPES(ATT_FWD)

// Generation: q (B,Tq,H,D), the new queries at positions length-Tq .. length-1, over the first length positions of
// caches k and v (B,Tmax,Hkv,D) -> out (B,Tq,H,D). grid (Tq, H, B), block 32.
template <typename T> __device__ void attention_cached(const T* q, const T* k, const T* v, T* out, int tq, int tmax, int length,
                                                       int h, int hkv, int d, float scale) {
    int i = blockIdx.x, head = blockIdx.y, b = blockIdx.z, kvh = head / (h / hkv);
    long row = (((long) b * tq + i) * h + head) * d;
    attend_row(q + row, k, v, out + row, b, kvh, tmax, hkv, 0, length - tq + i, d, scale);
}
#define ATT_CACHED(T, S) extern "C" __global__ void attention_cached_##S(const T* q, const T* k, const T* v, T* out, int tq, \
        int tmax, int length, int h, int hkv, int d, float scale) { attention_cached<T>(q, k, v, out, tq, tmax, length, h, hkv, d, scale); }
FOR_TYPES(ATT_CACHED)

// delta (B,H,T) = rowwise dot(dout, out), used by both backward kernels. Eight lanes a row (b, i, head), a warp's
// four rows side by side in memory, 16 bytes a load where d is a multiple of 8 (rows then start 16-byte aligned).
template <typename T> __device__ void attention_delta(const T* dout, const T* out, float* delta, int b, int t, int h, int d) {
    long rows = (long) b * t * h;
    int part = threadIdx.x & 7;
    // the loop runs alike for a whole warp (its four rows from w0), so the shuffles see every lane
    for (long w0 = ((long) blockIdx.x * blockDim.x + threadIdx.x) / 32 * 4; w0 < rows; w0 += (long) gridDim.x * blockDim.x / 8) {
        long r = w0 + (threadIdx.x & 31) / 8;
        float s = 0.f;
        if (r < rows) {
            const T *a = dout + r * d, *o = out + r * d;
            if (d % 8 == 0)
                for (int c = part; c < d / 8; c += 8) {
                    Vec8<T> x = load8(a, c), y = load8(o, c);
#pragma unroll
                    for (int e = 0; e < 8; e++) s += to_float(x.v[e]) * to_float(y.v[e]);
                }
            else
                for (int e = part; e < d; e += 8) s += to_float(a[e]) * to_float(o[e]);
        }
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        s += __shfl_xor_sync(0xffffffffu, s, 4);
        if (part == 0 && r < rows) {
            long head = r % h, bi = r / h; // bi = b·t + i
            delta[(bi / t * h + head) * t + bi % t] = s;
        }
    }
}
#define ATT_DELTA(T, S) extern "C" __global__ void attention_delta_##S(const T* dout, const T* out, float* delta, int b, int t, \
    int h, int d) { attention_delta<T>(dout, out, delta, b, t, h, d); }
FOR_TYPES(ATT_DELTA)

// dq for query row i, over the keys of its document. grid (T, H, B), block 32.
template <typename T> __device__ void attention_bwd_dq(const T* dout, const T* q, const T* k, const T* v,
        const float* lse, const float* delta, T* dq, int t, int h, int hkv, int d, float scale, const int* starts) {
    int i = blockIdx.x, head = blockIdx.y, b = blockIdx.z, lane = threadIdx.x, kvh = head / (h / hkv);
    long row = (((long) b * t + i) * h + head) * d;
    float rowLse = lse[((long) b * h + head) * t + i], rowD = delta[((long) b * h + head) * t + i];
    float acc[MAX_PER_LANE] = {0.f, 0.f, 0.f, 0.f};
    for (int j = starts ? starts[(long) b * t + i] : 0; j <= i; j++) {
        long kv = (((long) b * t + j) * hkv + kvh) * d;
        float p = expf(dot_warp(q + row, k + kv, d) * scale - rowLse);
        float ds = p * (dot_warp(dout + row, v + kv, d) - rowD) * scale;
        for (int r = 0; r < MAX_PER_LANE; r++) {
            int e = lane + 32 * r;
            if (e < d) acc[r] += ds * to_float(k[kv + e]);
        }
    }
    for (int r = 0; r < MAX_PER_LANE; r++) {
        int e = lane + 32 * r;
        if (e < d) dq[row + e] = from_float<T>(acc[r]);
    }
}
#define ATT_DQ(T, S) extern "C" __global__ void attention_bwd_dq_##S(const T* dout, const T* q, const T* k, const T* v, \
    const float* lse, const float* delta, T* dq, int t, int h, int hkv, int d, float scale, const int* starts) \
    { attention_bwd_dq<T>(dout, q, k, v, lse, delta, dq, t, h, hkv, d, scale, starts); }
FOR_TYPES(ATT_DQ)

// dk, dv for key row j of kv head kvh, summed over the query heads of its group (and the queries of its document).
// grid (T, Hkv, B), block 32.
template <typename T> __device__ void attention_bwd_dkv(const T* dout, const T* q, const T* k, const T* v,
        const float* lse, const float* delta, T* dk, T* dv, int t, int h, int hkv, int d, float scale, const int* starts) {
    int j = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z, lane = threadIdx.x, group = h / hkv;
    long kv = (((long) b * t + j) * hkv + kvh) * d;
    float dkAcc[MAX_PER_LANE] = {0.f, 0.f, 0.f, 0.f}, dvAcc[MAX_PER_LANE] = {0.f, 0.f, 0.f, 0.f};
    for (int head = kvh * group; head < (kvh + 1) * group; head++) {
        for (int i = j; i < t; i++) {
            if (starts && starts[(long) b * t + i] > j) continue; // a later document's query: the whole warp skips it
            long row = (((long) b * t + i) * h + head) * d;
            float p = expf(dot_warp(q + row, k + kv, d) * scale - lse[((long) b * h + head) * t + i]);
            float ds = p * (dot_warp(dout + row, v + kv, d) - delta[((long) b * h + head) * t + i]) * scale;
            for (int r = 0; r < MAX_PER_LANE; r++) {
                int e = lane + 32 * r;
                if (e < d) {
                    dvAcc[r] += p * to_float(dout[row + e]);
                    dkAcc[r] += ds * to_float(q[row + e]);
                }
            }
        }
    }
    for (int r = 0; r < MAX_PER_LANE; r++) {
        int e = lane + 32 * r;
        if (e < d) {
            dk[kv + e] = from_float<T>(dkAcc[r]);
            dv[kv + e] = from_float<T>(dvAcc[r]);
        }
    }
}
#define ATT_DKV(T, S) extern "C" __global__ void attention_bwd_dkv_##S(const T* dout, const T* q, const T* k, const T* v, \
    const float* lse, const float* delta, T* dk, T* dv, int t, int h, int hkv, int d, float scale, const int* starts) \
    { attention_bwd_dkv<T>(dout, q, k, v, lse, delta, dk, dv, t, h, hkv, d, scale, starts); }
FOR_TYPES(ATT_DKV)
