// Causal attention with grouped-query heads, F32, in the FlashAttention manner: online softmax, only the
// log-sum-exp of each row is kept, never a (T,T) matrix. One warp per query row (forward, dq) or key row (dk, dv);
// each lane holds head dimensions lane, lane+32, ... (D <= 128).
#include "common.cuh"

#define MAX_PER_LANE 4

__device__ __forceinline__ float dot_warp(const float* a, const float* b, int d) {
    float s = 0.f;
    for (int e = threadIdx.x & 31; e < d; e += 32) s += a[e] * b[e];
    return warp_sum(s);
}

// q (B,T,H,D), k and v (B,T,Hkv,D) -> out (B,T,H,D), lse (B,H,T). grid (T, H, B), block 32.
extern "C" __global__ void attention_fwd_f32(const float* q, const float* k, const float* v, float* out, float* lse,
                                             int t, int h, int hkv, int d, float scale) {
    int i = blockIdx.x, head = blockIdx.y, b = blockIdx.z, lane = threadIdx.x, kvh = head / (h / hkv);
    const float* qi = q + (((long) b * t + i) * h + head) * d;
    float acc[MAX_PER_LANE] = {0.f, 0.f, 0.f, 0.f};
    float m = -INFINITY, l = 0.f;
    for (int j = 0; j <= i; j++) {
        long kv = (((long) b * t + j) * hkv + kvh) * d;
        float s = dot_warp(qi, k + kv, d) * scale;
        float mNew = fmaxf(m, s), corr = expf(m - mNew), p = expf(s - mNew);
        l = l * corr + p;
        for (int r = 0; r < MAX_PER_LANE; r++) {
            int e = lane + 32 * r;
            if (e < d) acc[r] = acc[r] * corr + p * v[kv + e];
        }
        m = mNew;
    }
    float* oi = out + (((long) b * t + i) * h + head) * d;
    for (int r = 0; r < MAX_PER_LANE; r++) {
        int e = lane + 32 * r;
        if (e < d) oi[e] = acc[r] / l;
    }
    if (lane == 0) lse[((long) b * h + head) * t + i] = m + logf(l);
}

// delta (B,H,T) = rowwise dot(dout, out), used by both backward kernels. grid (T, H, B), block 32.
extern "C" __global__ void attention_delta_f32(const float* dout, const float* out, float* delta, int t, int h, int d) {
    int i = blockIdx.x, head = blockIdx.y, b = blockIdx.z;
    long row = (((long) b * t + i) * h + head) * d;
    float s = dot_warp(dout + row, out + row, d);
    if (threadIdx.x == 0) delta[((long) b * h + head) * t + i] = s;
}

// dq for query row i. grid (T, H, B), block 32.
extern "C" __global__ void attention_bwd_dq_f32(const float* dout, const float* q, const float* k, const float* v,
                                                const float* lse, const float* delta, float* dq,
                                                int t, int h, int hkv, int d, float scale) {
    int i = blockIdx.x, head = blockIdx.y, b = blockIdx.z, lane = threadIdx.x, kvh = head / (h / hkv);
    long row = (((long) b * t + i) * h + head) * d;
    float rowLse = lse[((long) b * h + head) * t + i], rowD = delta[((long) b * h + head) * t + i];
    float acc[MAX_PER_LANE] = {0.f, 0.f, 0.f, 0.f};
    for (int j = 0; j <= i; j++) {
        long kv = (((long) b * t + j) * hkv + kvh) * d;
        float p = expf(dot_warp(q + row, k + kv, d) * scale - rowLse);
        float ds = p * (dot_warp(dout + row, v + kv, d) - rowD) * scale;
        for (int r = 0; r < MAX_PER_LANE; r++) {
            int e = lane + 32 * r;
            if (e < d) acc[r] += ds * k[kv + e];
        }
    }
    for (int r = 0; r < MAX_PER_LANE; r++) {
        int e = lane + 32 * r;
        if (e < d) dq[row + e] = acc[r];
    }
}

// dk, dv for key row j of kv head kvh, summed over the query heads of its group. grid (T, Hkv, B), block 32.
extern "C" __global__ void attention_bwd_dkv_f32(const float* dout, const float* q, const float* k, const float* v,
                                                 const float* lse, const float* delta, float* dk, float* dv,
                                                 int t, int h, int hkv, int d, float scale) {
    int j = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z, lane = threadIdx.x, group = h / hkv;
    long kv = (((long) b * t + j) * hkv + kvh) * d;
    float dkAcc[MAX_PER_LANE] = {0.f, 0.f, 0.f, 0.f}, dvAcc[MAX_PER_LANE] = {0.f, 0.f, 0.f, 0.f};
    for (int head = kvh * group; head < (kvh + 1) * group; head++) {
        for (int i = j; i < t; i++) {
            long row = (((long) b * t + i) * h + head) * d;
            float p = expf(dot_warp(q + row, k + kv, d) * scale - lse[((long) b * h + head) * t + i]);
            float ds = p * (dot_warp(dout + row, v + kv, d) - delta[((long) b * h + head) * t + i]) * scale;
            for (int r = 0; r < MAX_PER_LANE; r++) {
                int e = lane + 32 * r;
                if (e < d) {
                    dvAcc[r] += p * dout[row + e];
                    dkAcc[r] += ds * q[row + e];
                }
            }
        }
    }
    for (int r = 0; r < MAX_PER_LANE; r++) {
        int e = lane + 32 * r;
        if (e < d) {
            dk[kv + e] = dkAcc[r];
            dv[kv + e] = dvAcc[r];
        }
    }
}
