// Causal attention with grouped-query heads on bf16 tensor cores (mma.sync m16n8k16, f32 accumulation), in the
// FlashAttention-2 manner: online softmax, only the log-sum-exp of each row kept, never a (T,T) matrix.
// q, dq (B,T,H,D); k, v, dk, dv (B,T,Hkv,D); lse, delta (B,H,T) f32. Head size D = 64. A block of 4 warps owns
// 128 queries in the forward (32 per warp) and 64 keys in the backward (16 per warp: its registers hold more per
// row), in registers, and walks the other side 64 rows at a time through shared memory: two buffers, the next tile
// streaming in by cp.async while the current one is worked on. Forward query blocks run last row first, so the
// causal mask's longest blocks start first and the short ones fill the tail.
// Fragment layouts are PTX's for m16n8k16: lane = 4·g + t holds rows g and g+8, columns 2t, 2t+1 (+8).
#include "common.cuh"

#define HD 64          // head size
#define TILE 64        // keys (or queries) per step
#define KSTEPS (HD / 16)
#define DTILES (HD / 8)
#define NTILES (TILE / 8)

__device__ __forceinline__ void mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#define SROW (HD + 8) // a shared tile's row in bf16: 144 bytes, so the fragment reads below hit 32 distinct banks

// Two consecutive bf16 of a row as one register, zero past the sequence end.
__device__ __forceinline__ unsigned pair(const bf16* row, int col, bool valid) {
    return valid ? *reinterpret_cast<const unsigned*>(row + col) : 0u;
}

// A fragments (16 rows x HD) of a row-major matrix with row stride `stride`, rows from `row0`, zero past t_len.
__device__ __forceinline__ void load_a(unsigned (*a)[4], const bf16* base, long stride, int row0, int t_len) {
    int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    for (int ks = 0; ks < KSTEPS; ks++) {
        int col = ks * 16 + 2 * t;
        a[ks][0] = pair(base + (long) (row0 + g) * stride, col, row0 + g < t_len);
        a[ks][1] = pair(base + (long) (row0 + g + 8) * stride, col, row0 + g + 8 < t_len);
        a[ks][2] = pair(base + (long) (row0 + g) * stride, col + 8, row0 + g < t_len);
        a[ks][3] = pair(base + (long) (row0 + g + 8) * stride, col + 8, row0 + g + 8 < t_len);
    }
}

// Starts copying rows [row0, row0 + TILE) x HD of a row-major matrix into a shared tile (TILE x SROW), zeros past
// t_len: the whole block takes part, 16 bytes a copy. Complete after copy_commit, copy_wait and __syncthreads.
__device__ __forceinline__ void load_tile(bf16* tile, const bf16* base, long stride, int row0, int t_len) {
    for (int i = threadIdx.x; i < TILE * HD / 8; i += blockDim.x) {
        int r = i / (HD / 8), c = i % (HD / 8) * 8;
        bool in = row0 + r < t_len;
        copy16_async(tile + r * SROW + c, in ? base + (long) (row0 + r) * stride + c : base, in);
    }
}

// Before the K and V tiles at k0 (in buffers cur) are worked on: starts copying the next ones, up to key `last`,
// into the other buffers, and waits until the current ones are in shared memory for the whole block.
__device__ __forceinline__ void next_kv(bf16 (*kTiles)[TILE * SROW], bf16 (*vTiles)[TILE * SROW], const bf16* kb,
        const bf16* vb, long ks, int k0, int cur, int last, int t_len) {
    if (k0 + TILE <= last) {
        load_tile(kTiles[cur ^ 1], kb, ks, k0 + TILE, t_len);
        load_tile(vTiles[cur ^ 1], vb, ks, k0 + TILE, t_len);
    }
    copy_commit();
    copy_wait<1>();
    __syncthreads();
}

__device__ __forceinline__ unsigned shared_address(const void* p) { return (unsigned) __cvta_generic_to_shared(p); }

// acc (16M x TILE) = A (16M x HD) · Bᵀ, B the shared tile (TILE rows x HD), A as M fragments of 16 rows. B's
// fragments are 8x8 blocks of the tile as stored (rows of B are columns of Bᵀ): one ldmatrix.x4 reads four, the
// k-steps ks and ks + 1 of 8 rows, and serves all M row fragments.
template <int M>
__device__ __forceinline__ void scores(float (&acc)[M][NTILES][4], const unsigned (&a)[M][KSTEPS][4], const bf16* tile) {
    int lane = threadIdx.x & 31;
#pragma unroll
    for (int nt = 0; nt < NTILES; nt++) {
#pragma unroll
        for (int m = 0; m < M; m++) acc[m][nt][0] = acc[m][nt][1] = acc[m][nt][2] = acc[m][nt][3] = 0.f;
#pragma unroll
        for (int ks = 0; ks < KSTEPS; ks += 2) {
            unsigned b[4];
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                         : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3])
                         : "r"(shared_address(tile + (nt * 8 + (lane & 7)) * SROW + ks * 16 + (lane >> 3) * 8)));
#pragma unroll
            for (int m = 0; m < M; m++) {
                mma(acc[m][nt], a[m][ks], b[0], b[1]);
                mma(acc[m][nt], a[m][ks + 1], b[2], b[3]);
            }
        }
    }
}

// out (16M x HD) += P (16M x TILE, in C layout) · V, V the shared tile (TILE rows x HD). The B fragments are columns
// of V: ldmatrix.trans reads four 8x8 blocks (rows +0/+8, columns +0/+8) and hands each lane its column pairs.
template <int M>
__device__ __forceinline__ void accumulate(float (&out)[M][DTILES][4], const float (&p)[M][NTILES][4], const bf16* tile) {
    int lane = threadIdx.x & 31, j = lane >> 3, i = lane & 7;
#pragma unroll
    for (int ks = 0; ks < TILE / 16; ks++) {
        unsigned a[M][4];
#pragma unroll
        for (int m = 0; m < M; m++) {
            a[m][0] = bf16x2(p[m][2 * ks][0], p[m][2 * ks][1]);
            a[m][1] = bf16x2(p[m][2 * ks][2], p[m][2 * ks][3]);
            a[m][2] = bf16x2(p[m][2 * ks + 1][0], p[m][2 * ks + 1][1]);
            a[m][3] = bf16x2(p[m][2 * ks + 1][2], p[m][2 * ks + 1][3]);
        }
#pragma unroll
        for (int dt = 0; dt < DTILES; dt += 2) {
            const bf16* src = tile + (ks * 16 + (j & 1) * 8 + i) * SROW + dt * 8 + (j >> 1) * 8;
            unsigned b[4];
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                         : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3]) : "r"(shared_address(src)));
#pragma unroll
            for (int m = 0; m < M; m++) {
                mma(out[m][dt], a[m], b[0], b[1]);
                mma(out[m][dt + 1], a[m], b[2], b[3]);
            }
        }
    }
}

__device__ __forceinline__ float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// The forward: 32 queries a warp (two row fragments share every K and V fragment read from shared memory, which
// bounds these kernels), 128 a block.
#define FWD_M 2
#define FWD_ROWS (4 * 16 * FWD_M)

extern "C" __global__ void __launch_bounds__(128) attention_mma_fwd(const bf16* q, const bf16* k, const bf16* v, bf16* out,
        float* lse, int t_len, int h, int hkv, float scale) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    __shared__ __align__(16) bf16 kTiles[2][TILE * SROW], vTiles[2][TILE * SROW];
    int head = blockIdx.y, b = blockIdx.z, kvh = head / (h / hkv);
    // warps past t_len still help load the tiles
    int qBlock = (gridDim.x - 1 - blockIdx.x) * FWD_ROWS, q0 = qBlock + warp * 16 * FWD_M;
    long qs = (long) h * HD, ks = (long) hkv * HD;
    const bf16* qb = q + (long) b * t_len * qs + head * HD;
    const bf16* kb = k + (long) b * t_len * ks + kvh * HD;
    const bf16* vb = v + (long) b * t_len * ks + kvh * HD;
    load_tile(kTiles[0], kb, ks, 0, t_len);
    load_tile(vTiles[0], vb, ks, 0, t_len);
    copy_commit();
    unsigned qa[FWD_M][KSTEPS][4];
#pragma unroll
    for (int m = 0; m < FWD_M; m++) load_a(qa[m], qb, qs, q0 + 16 * m, t_len);
    float o[FWD_M][DTILES][4] = {}, s[FWD_M][NTILES][4];
    float mx[FWD_M][2], l[FWD_M][2] = {}, scale2 = scale * LOG2E; // mx: the rows' largest unscaled scores
#pragma unroll
    for (int m = 0; m < FWD_M; m++) mx[m][0] = mx[m][1] = -INFINITY;
    int last = min(qBlock + FWD_ROWS - 1, t_len - 1);
    for (int k0 = 0, cur = 0; k0 <= last; k0 += TILE, cur ^= 1) {
        next_kv(kTiles, vTiles, kb, vb, ks, k0, cur, last, t_len);
        const bf16 *kTile = kTiles[cur], *vTile = vTiles[cur];
        scores(s, qa, kTile);
        // Only tiles reaching past the warp's first query need the causal mask; key <= row also hides keys past
        // t_len from every row written. Scores stay unscaled (scale > 0 keeps their order) until the exponent.
        if (k0 + TILE > q0)
#pragma unroll
            for (int m = 0; m < FWD_M; m++)
#pragma unroll
                for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        if (k0 + nt * 8 + 2 * t + (e & 1) > q0 + 16 * m + g + (e >> 1) * 8) s[m][nt][e] = -INFINITY;
#pragma unroll
        for (int m = 0; m < FWD_M; m++) {
            float tileMax[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) tileMax[e >> 1] = fmaxf(tileMax[e >> 1], s[m][nt][e]);
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float mNew = fmaxf(mx[m][r], quad_max(tileMax[r]));
                float base = (mNew == -INFINITY ? 0.f : mNew) * scale2, corr = exp2_approx(fmaf(mx[m][r], scale2, -base));
                l[m][r] *= corr;
#pragma unroll
                for (int dt = 0; dt < DTILES; dt++) { o[m][dt][2 * r] *= corr; o[m][dt][2 * r + 1] *= corr; }
#pragma unroll
                for (int nt = 0; nt < NTILES; nt++) {
                    s[m][nt][2 * r] = exp2_approx(fmaf(s[m][nt][2 * r], scale2, -base));
                    s[m][nt][2 * r + 1] = exp2_approx(fmaf(s[m][nt][2 * r + 1], scale2, -base));
                    l[m][r] += s[m][nt][2 * r] + s[m][nt][2 * r + 1];
                }
                mx[m][r] = mNew;
            }
        }
        accumulate(o, s, vTile);
        __syncthreads(); // every warp is done with these tiles before the next copy into them
    }
#pragma unroll
    for (int m = 0; m < FWD_M; m++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            int row = q0 + 16 * m + g + 8 * r;
            float sum = quad_sum(l[m][r]);
            if (row >= t_len) continue;
            bf16* orow = out + ((long) b * t_len + row) * qs + head * HD;
#pragma unroll
            for (int dt = 0; dt < DTILES; dt++)
                *reinterpret_cast<unsigned*>(orow + dt * 8 + 2 * t) = bf16x2(o[m][dt][2 * r] / sum, o[m][dt][2 * r + 1] / sum);
            if (t == 0) lse[((long) b * h + head) * t_len + row] = mx[m][r] * scale + logf(sum);
        }
}

// The backward, FlashAttention-2's way: a block owns 64 keys (16 a warp) and walks the queries of every head in its
// group, accumulating dk = scale · Σ dSᵀ·Q and dv = Σ Pᵀ·dO in registers, where dS = P∘(dP − delta), dP = dO·Vᵀ.
// dq = scale · Σ_keys dS·K takes a share of every query tile's dS through shared memory and is added, unscaled,
// into the f32 dq_acc (B,T,H,D) by vector atomics; attention_dq_finish scales it into dq. One pass over Q and dO
// instead of a second kernel recomputing QKᵀ and dO·Vᵀ for dq.
extern "C" __global__ void __launch_bounds__(128) attention_mma_bwd(const bf16* dout, const bf16* q, const bf16* k,
        const bf16* v, const float* lse, const float* delta, float* dq_acc, bf16* dk, bf16* dv, int t_len, int h, int hkv, float scale) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    __shared__ __align__(16) bf16 qTiles[2][TILE * SROW], oTiles[2][TILE * SROW], dsTile[TILE * SROW]; // dsTile: dSᵀ, keys x queries
    __shared__ __align__(8) float lseTiles[2][TILE], deltaTiles[2][TILE]; // lse in base 2
    int kvh = blockIdx.y, b = blockIdx.z, group = h / hkv;
    int kBlock = blockIdx.x * TILE, k0w = kBlock + warp * 16; // the first key blocks see the most queries: they start first
    long qs = (long) h * HD, ks = (long) hkv * HD;
    const bf16* kb = k + (long) b * t_len * ks + kvh * HD;
    const bf16* vb = v + (long) b * t_len * ks + kvh * HD;
    // Tile i: query head kvh·group + i / perHead, queries from kBlock + (i % perHead)·TILE.
    int perHead = (t_len - kBlock + TILE - 1) / TILE, tiles = group * perHead;
    auto fetch = [&](int i, int buf) {
        int head = kvh * group + i / perHead, q0 = kBlock + i % perHead * TILE;
        load_tile(qTiles[buf], q + (long) b * t_len * qs + head * HD, qs, q0, t_len);
        load_tile(oTiles[buf], dout + (long) b * t_len * qs + head * HD, qs, q0, t_len);
        // Queries past t_len get lse = +inf, so their P is 0 without a mask.
        if (threadIdx.x < TILE) {
            bool in = q0 + threadIdx.x < t_len;
            long at = ((long) b * h + head) * t_len + q0 + threadIdx.x;
            lseTiles[buf][threadIdx.x] = in ? lse[at] * LOG2E : INFINITY;
            deltaTiles[buf][threadIdx.x] = in ? delta[at] : 0.f;
        }
    };
    fetch(0, 0);
    copy_commit();
    unsigned ka[1][KSTEPS][4], va[1][KSTEPS][4];
    load_a(ka[0], kb, ks, k0w, t_len);
    load_a(va[0], vb, ks, k0w, t_len);
    // This warp's share of dq: head dimensions 16·warp to 16·warp + 15, so its B fragments are K's block of 64 keys
    // by those 16 columns (k = key pairs, n = dimension), zero past t_len, held for the whole walk.
    unsigned kf[KSTEPS][2][2];
#pragma unroll
    for (int s = 0; s < KSTEPS; s++)
#pragma unroll
        for (int n = 0; n < 2; n++)
#pragma unroll
            for (int half = 0; half < 2; half++) {
                int key = kBlock + s * 16 + half * 8 + 2 * t, col = warp * 16 + n * 8 + g;
                float lo = key < t_len ? to_float(kb[(long) key * ks + col]) : 0.f;
                float hi = key + 1 < t_len ? to_float(kb[(long) (key + 1) * ks + col]) : 0.f;
                kf[s][n][half] = bf16x2(lo, hi);
            }
    float dkAcc[1][DTILES][4] = {}, dvAcc[1][DTILES][4] = {}, st[1][NTILES][4], dpt[1][NTILES][4], scale2 = scale * LOG2E;
    auto &s = st[0], &dp = dpt[0];
    for (int i = 0, cur = 0; i < tiles; i++, cur ^= 1) {
        if (i + 1 < tiles) fetch(i + 1, cur ^ 1);
        copy_commit();
        copy_wait<1>();
        __syncthreads();
        int head = kvh * group + i / perHead, q0 = kBlock + i % perHead * TILE;
        const bf16 *qTile = qTiles[cur], *oTile = oTiles[cur];
        const float *lseTile = lseTiles[cur], *deltaTile = deltaTiles[cur];
        scores(st, ka, qTile);   // Sᵀ: keys x queries
        scores(dpt, va, oTile);  // dPᵀ
        if (q0 == kBlock) // the diagonal tile; keys past t_len see no query
#pragma unroll
            for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    if (q0 + nt * 8 + 2 * t + (e & 1) < k0w + g + 8 * (e >> 1)) s[nt][e] = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NTILES; nt++) {
            float2 rowLse = *reinterpret_cast<const float2*>(lseTile + nt * 8 + 2 * t);
            float2 rowDelta = *reinterpret_cast<const float2*>(deltaTile + nt * 8 + 2 * t);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = exp2_approx(fmaf(s[nt][e], scale2, -(e & 1 ? rowLse.y : rowLse.x)));
                s[nt][e] = p;
                dp[nt][e] = p * (dp[nt][e] - (e & 1 ? rowDelta.y : rowDelta.x));
            }
#pragma unroll
            for (int r = 0; r < 2; r++)
                *reinterpret_cast<unsigned*>(dsTile + (warp * 16 + g + 8 * r) * SROW + nt * 8 + 2 * t) = bf16x2(dp[nt][2 * r], dp[nt][2 * r + 1]);
        }
        accumulate(dvAcc, st, oTile);
        accumulate(dkAcc, dpt, qTile);
        __syncthreads(); // dsTile holds every warp's keys
        // dq (64 queries x this warp's 16 columns) += dS · K: A fragments are dSᵀ read transposed, 16 queries at a time.
        float* qAcc = dq_acc + ((long) b * t_len + q0) * qs + head * HD + warp * 16;
        int j = lane >> 3, l8 = lane & 7;
#pragma unroll
        for (int m = 0; m < TILE / 16; m++) {
            float c[2][4] = {};
#pragma unroll
            for (int s4 = 0; s4 < KSTEPS; s4++) {
                unsigned a[4];
                asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                             : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
                             : "r"(shared_address(dsTile + (s4 * 16 + (j >> 1) * 8 + l8) * SROW + m * 16 + (j & 1) * 8)));
                mma(c[0], a, kf[s4][0][0], kf[s4][0][1]);
                mma(c[1], a, kf[s4][1][0], kf[s4][1][1]);
            }
#pragma unroll
            for (int r = 0; r < 2; r++) {
                int row = m * 16 + g + 8 * r;
                if (q0 + row >= t_len) continue;
#pragma unroll
                for (int n = 0; n < 2; n++)
                    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};"
                                 :: "l"(qAcc + (long) row * qs + n * 8 + 2 * t), "f"(c[n][2 * r]), "f"(c[n][2 * r + 1]) : "memory");
            }
        }
        __syncthreads(); // every warp is done with these tiles and dsTile before they are written again
    }
    for (int r = 0; r < 2; r++) {
        int key = k0w + g + 8 * r;
        if (key >= t_len) continue;
        bf16* krow = dk + ((long) b * t_len + key) * ks + kvh * HD;
        bf16* vrow = dv + ((long) b * t_len + key) * ks + kvh * HD;
        for (int dt = 0; dt < DTILES; dt++) {
            *reinterpret_cast<unsigned*>(krow + dt * 8 + 2 * t) = bf16x2(dkAcc[0][dt][2 * r] * scale, dkAcc[0][dt][2 * r + 1] * scale);
            *reinterpret_cast<unsigned*>(vrow + dt * 8 + 2 * t) = bf16x2(dvAcc[0][dt][2 * r], dvAcc[0][dt][2 * r + 1]);
        }
    }
}

// dq = scale · dq_acc, into the activations' bf16.
extern "C" __global__ void attention_dq_finish(const float* dq_acc, bf16* dq, long n, float scale) {
    map1(dq_acc, dq, n, [=](float x) { return x * scale; });
}
