// LayerNorm and RMSNorm, forward and backward, F32. One block per row; weight gradients by column in a second pass.
#include "common.cuh"

extern "C" __global__ void layernorm_fwd_f32(const float* x, const float* w, const float* b, float* out, float* mean,
                                             float* rstd, int c, float eps) {
    __shared__ float shared[32];
    const float* xr = x + (long) blockIdx.x * c;
    float s = 0.f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) s += xr[j];
    float m = block_sum(s, shared) / c;
    float v = 0.f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) { float d = xr[j] - m; v += d * d; }
    float r = rsqrtf(block_sum(v, shared) / c + eps);
    float* o = out + (long) blockIdx.x * c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) o[j] = (xr[j] - m) * r * w[j] + b[j];
    if (threadIdx.x == 0) { mean[blockIdx.x] = m; rstd[blockIdx.x] = r; }
}

extern "C" __global__ void layernorm_bwd_f32(const float* dout, const float* x, const float* w, const float* mean,
                                             const float* rstd, float* dx, int c) {
    __shared__ float shared[32];
    long base = (long) blockIdx.x * c;
    float m = mean[blockIdx.x], r = rstd[blockIdx.x], sd = 0.f, sdn = 0.f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        float norm = (x[base + j] - m) * r, dn = dout[base + j] * w[j];
        sd += dn;
        sdn += dn * norm;
    }
    float meanD = block_sum(sd, shared) / c, meanDN = block_sum(sdn, shared) / c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        float norm = (x[base + j] - m) * r, dn = dout[base + j] * w[j];
        dx[base + j] = r * (dn - meanD - norm * meanDN);
    }
}

// dw (C) += Σ_rows dout·norm, db (C) += Σ_rows dout; norm rebuilt from mean (null for RMSNorm) and rstd.
extern "C" __global__ void norm_weight_grad_f32(const float* dout, const float* x, const float* mean, const float* rstd,
                                                float* dw, float* db, long n, int c) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    float sw = 0.f, sb = 0.f;
    for (long r = 0; r < n; r++) {
        float g = dout[r * c + j], m = mean ? mean[r] : 0.f;
        sw += g * (x[r * c + j] - m) * rstd[r];
        sb += g;
    }
    dw[j] += sw;
    if (db) db[j] += sb;
}

extern "C" __global__ void rmsnorm_fwd_f32(const float* x, const float* w, float* out, float* rstd, int c, float eps) {
    __shared__ float shared[32];
    const float* xr = x + (long) blockIdx.x * c;
    float s = 0.f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) s += xr[j] * xr[j];
    float r = rsqrtf(block_sum(s, shared) / c + eps);
    float* o = out + (long) blockIdx.x * c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) o[j] = xr[j] * r * w[j];
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}

extern "C" __global__ void rmsnorm_bwd_f32(const float* dout, const float* x, const float* w, const float* rstd, float* dx, int c) {
    __shared__ float shared[32];
    long base = (long) blockIdx.x * c;
    float r = rstd[blockIdx.x], s = 0.f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) s += dout[base + j] * w[j] * x[base + j] * r;
    float meanDN = block_sum(s, shared) / c;
    for (int j = threadIdx.x; j < c; j += blockDim.x)
        dx[base + j] = r * (dout[base + j] * w[j] - x[base + j] * r * meanDN);
}
