// Element-wise ops, F32. One thread per element in a grid-stride loop.
#include "common.cuh"

extern "C" __global__ void add_f32(const float* a, const float* b, float* out, long n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

extern "C" __global__ void add_inplace_f32(float* acc, const float* x, long n) {
    GRID_STRIDE(i, n) acc[i] += x[i];
}

extern "C" __global__ void scale_f32(float* x, float s, long n) {
    GRID_STRIDE(i, n) x[i] *= s;
}

// x (N,C) += bias (C)
extern "C" __global__ void add_bias_f32(float* x, const float* bias, long n, int c) {
    GRID_STRIDE(i, n) x[i] += bias[i % c];
}

#define GELU_K 0.7978845608028654f

extern "C" __global__ void gelu_fwd_f32(const float* x, float* out, long n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        out[i] = 0.5f * v * (1.f + tanhf(GELU_K * (v + 0.044715f * v * v * v)));
    }
}

extern "C" __global__ void gelu_bwd_f32(const float* dout, const float* x, float* dx, long n) {
    GRID_STRIDE(i, n) {
        float v = x[i], th = tanhf(GELU_K * (v + 0.044715f * v * v * v));
        float grad = 0.5f * (1.f + th) + 0.5f * v * (1.f - th * th) * GELU_K * (1.f + 3.f * 0.044715f * v * v);
        dx[i] = dout[i] * grad;
    }
}

// silu(gate) * up
extern "C" __global__ void swiglu_fwd_f32(const float* gate, const float* up, float* out, long n) {
    GRID_STRIDE(i, n) {
        float g = gate[i];
        out[i] = g / (1.f + expf(-g)) * up[i];
    }
}

extern "C" __global__ void swiglu_bwd_f32(const float* dout, const float* gate, const float* up, float* dgate, float* dup, long n) {
    GRID_STRIDE(i, n) {
        float g = gate[i], sig = 1.f / (1.f + expf(-g));
        dgate[i] = dout[i] * up[i] * sig * (1.f + g * (1.f - sig));
        dup[i] = dout[i] * g * sig;
    }
}

// ids (N) -> rows of table (V,C)
extern "C" __global__ void embedding_fwd_f32(const int* ids, const float* table, float* out, long n, int c) {
    GRID_STRIDE(i, n * c) out[i] = table[(long) ids[i / c] * c + i % c];
}

// dtable (V,C) += scatter of dout (N,C); rows with the same id meet in atomicAdd.
extern "C" __global__ void embedding_bwd_f32(const int* ids, const float* dout, float* dtable, long n, int c) {
    GRID_STRIDE(i, n * c) atomicAdd(&dtable[(long) ids[i / c] * c + i % c], dout[i]);
}

// x (B,T,H,D) rotated in pairs (i, i + D/2) by cos/sin (T, D/2); sign = -1 for the inverse.
extern "C" __global__ void rope_f32(const float* x, const float* cos_t, const float* sin_t, float* out,
                                    long bt, int t, int h, int d, float sign) {
    int half = d / 2;
    GRID_STRIDE(idx, bt * h * half) {
        long row = idx / (h * half);
        int rem = idx % (h * half), head = rem / half, i = rem % half, pos = row % t;
        long base = (row * h + head) * d;
        float c = cos_t[pos * half + i], s = sign * sin_t[pos * half + i];
        float x1 = x[base + i], x2 = x[base + i + half];
        out[base + i] = x1 * c - x2 * s;
        out[base + i + half] = x2 * c + x1 * s;
    }
}

// PyTorch's AdamW on one tensor; grad is multiplied by grad_scale (clipping) first.
extern "C" __global__ void adamw_f32(float* p, const float* g, float* m, float* v, long n, float lr, float beta1,
                                     float beta2, float eps, float weight_decay, float bc1, float bc2_sqrt, float grad_scale) {
    GRID_STRIDE(i, n) {
        float gi = g[i] * grad_scale;
        float mi = m[i] + (1.f - beta1) * (gi - m[i]);
        float vi = beta2 * v[i] + (1.f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * (1.f - lr * weight_decay) - (lr / bc1) * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}
