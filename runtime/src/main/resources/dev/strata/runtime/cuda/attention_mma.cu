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

__device__ __forceinline__ unsigned shared_address(const void* p) { return (unsigned) __cvta_generic_to_shared(p); }

// ---- Hopper's warpgroup MMA ---------------------------------------------------------------------------------------
// A block's four warps form one warpgroup, and wgmma.m64n64k16 multiplies its 64 rows (warp w: rows 16w.., A in
// mma.sync's fragment layout, accumulators as above) by a 16 x 64 B that the tensor cores read from shared memory
// themselves, once for all four warps. With mma.sync every warp loads every B fragment into registers, and those
// shared-memory reads bounded the kernels. B tiles are 64 rows of 128 bytes in the 128-byte swizzle that wgmma's
// descriptors name (mode 1): the 16-byte chunk c of row r sits at chunk c ^ (r % 8), tiles aligned to 1024 bytes.
// Only sm_90a has wgmma: elsewhere these compile to nothing and the mma.sync kernels run.
#define SWIZZLED_TILE (TILE * HD)

// Starts copying rows [row0, row0 + TILE) x HD into a swizzled tile, as load_tile does into a padded one.
__device__ __forceinline__ void load_swizzled(bf16* tile, const bf16* base, long stride, int row0, int t_len) {
    for (int i = threadIdx.x; i < TILE * HD / 8; i += blockDim.x) {
        int r = i / (HD / 8), c = i % (HD / 8);
        bool in = row0 + r < t_len;
        copy16_async(tile + r * HD + (c ^ (r & 7)) * 8, in ? base + (long) (row0 + r) * stride + c * 8 : base, in);
    }
}

// The descriptor of k-step ks of a swizzled tile as B: contracted along its rows (K-major, as for Q·Kᵀ: a step is 16
// columns, 32 bytes on) or down its columns (MN-major, as for P·V: a step is 16 rows, 2 KB on). Groups of 8 rows lie
// 1024 bytes apart; the leading offset is unused by both (one 128-byte row spans the 64 columns).
__device__ __forceinline__ unsigned long long tile_desc(const bf16* tile, bool mnMajor, int ks) {
    unsigned long long start = (shared_address(tile) + (mnMajor ? ks * 2048 : ks * 32)) >> 4;
    return (start & 0x3fff) | (unsigned long long) (mnMajor ? 64 : 1) << 16 | 64ull << 32 | 1ull << 62;
}

// acc (this warp's 16 rows x 64) = or += A (16 x 16) · B (16 x 64 from shared memory), asynchronously: complete after
// wgmma_wait.
template <int MN_MAJOR> __device__ __forceinline__ void wgmma64(float (&acc)[NTILES][4], const unsigned (&a)[4], unsigned long long desc, int accumulate) {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %38, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
                 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
                 "{%32,%33,%34,%35}, %36, p, 1, 1, %37;\n}\n"
                 : "+f"(acc[0][0]), "+f"(acc[0][1]), "+f"(acc[0][2]), "+f"(acc[0][3]), "+f"(acc[1][0]), "+f"(acc[1][1]), "+f"(acc[1][2]), "+f"(acc[1][3]),
                   "+f"(acc[2][0]), "+f"(acc[2][1]), "+f"(acc[2][2]), "+f"(acc[2][3]), "+f"(acc[3][0]), "+f"(acc[3][1]), "+f"(acc[3][2]), "+f"(acc[3][3]),
                   "+f"(acc[4][0]), "+f"(acc[4][1]), "+f"(acc[4][2]), "+f"(acc[4][3]), "+f"(acc[5][0]), "+f"(acc[5][1]), "+f"(acc[5][2]), "+f"(acc[5][3]),
                   "+f"(acc[6][0]), "+f"(acc[6][1]), "+f"(acc[6][2]), "+f"(acc[6][3]), "+f"(acc[7][0]), "+f"(acc[7][1]), "+f"(acc[7][2]), "+f"(acc[7][3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "n"(MN_MAJOR), "r"(accumulate));
#endif
}

// An empty volatile asm that claims to change r: the compiler keeps every access to r on its side of the wgmma
// fences and waits, which are volatile too.
template <int N, int M> __device__ __forceinline__ void pin(float (&r)[N][M]) {
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int j = 0; j < M; j++) asm volatile("" : "+f"(r[i][j]) :: "memory");
}

template <int N, int M> __device__ __forceinline__ void pin(unsigned (&r)[N][M]) {
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int j = 0; j < M; j++) asm volatile("" : "+r"(r[i][j]) :: "memory");
}

// Registers written before it are what the wgmma after it read (accumulators and A fragments).
__device__ __forceinline__ void wgmma_fence() {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#endif
}

// Waits for every wgmma this thread issued, then for accumulators a and b to be read.
__device__ __forceinline__ void wgmma_wait(float (&a)[NTILES][4], float (&b)[NTILES][4]) {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    asm volatile("wgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync.aligned 0;" ::: "memory");
#endif
    pin(a);
    pin(b);
}

// Copies written through the generic proxy (cp.async, st.shared) become visible to wgmma's reads.
__device__ __forceinline__ void fence_async_shared() {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}

// acc = A (this warp's 16 rows x HD, as KSTEPS fragments) · Bᵀ, B the swizzled tile (TILE rows x HD): scores on wgmma.
__device__ __forceinline__ void wg_scores(float (&acc)[NTILES][4], const unsigned (&a)[KSTEPS][4], const bf16* tile) {
#pragma unroll
    for (int ks = 0; ks < KSTEPS; ks++) wgmma64<0>(acc, a[ks], tile_desc(tile, false, ks), ks > 0);
}

// out += P (this warp's 16 rows x TILE, in C layout) · V, V the swizzled tile (TILE rows x HD): accumulate on wgmma.
// The A fragments are built into `a`, which must stay untouched until the wait.
__device__ __forceinline__ void wg_accumulate(float (&out)[DTILES][4], const float (&p)[NTILES][4], unsigned (&a)[TILE / 16][4], const bf16* tile) {
#pragma unroll
    for (int ks = 0; ks < TILE / 16; ks++) {
        a[ks][0] = bf16x2(p[2 * ks][0], p[2 * ks][1]);
        a[ks][1] = bf16x2(p[2 * ks][2], p[2 * ks][3]);
        a[ks][2] = bf16x2(p[2 * ks + 1][0], p[2 * ks + 1][1]);
        a[ks][3] = bf16x2(p[2 * ks + 1][2], p[2 * ks + 1][3]);
    }
    pin(a);
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < TILE / 16; ks++) wgmma64<1>(out, a[ks], tile_desc(tile, true, ks), 1);
}

// A tile for mma.sync's fragment loads (padded rows) or for wgmma (swizzled).
template <bool WG> __device__ __forceinline__ void load_tile_for(bf16* tile, const bf16* base, long stride, int row0, int t_len) {
    if (WG) load_swizzled(tile, base, stride, row0, t_len);
    else load_tile(tile, base, stride, row0, t_len);
}

// Before the K and V tiles at k0 (in buffers cur) are worked on: starts copying the next ones, up to key `last`,
// into the other buffers, and waits until the current ones are in shared memory for the whole block.
template <bool WG, int SIZE> __device__ __forceinline__ void next_kv(bf16 (*kTiles)[SIZE], bf16 (*vTiles)[SIZE], const bf16* kb,
        const bf16* vb, long ks, int k0, int cur, int last, int t_len) {
    if (k0 + TILE <= last) {
        load_tile_for<WG>(kTiles[cur ^ 1], kb, ks, k0 + TILE, t_len);
        load_tile_for<WG>(vTiles[cur ^ 1], vb, ks, k0 + TILE, t_len);
    }
    copy_commit();
    copy_wait<1>();
    if (WG) fence_async_shared();
    __syncthreads();
}

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

// WG: the products run on wgmma (sm_90a); fragment m of warp w then holds queries 64m + 16w.. of the block, as a
// warpgroup's 64 rows, instead of 32w + 16m...
template <bool WG> __device__ __forceinline__ void attention_fwd(const bf16* q, const bf16* k, const bf16* v, bf16* out,
        float* lse, int t_len, int h, int hkv, float scale) {
    constexpr int KVTILE = WG ? SWIZZLED_TILE : TILE * SROW;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    __shared__ __align__(1024) bf16 kTiles[2][KVTILE], vTiles[2][KVTILE];
    int head = blockIdx.y, b = blockIdx.z, kvh = head / (h / hkv);
    // warps past t_len still help load the tiles
    int qBlock = (gridDim.x - 1 - blockIdx.x) * FWD_ROWS, q0[FWD_M]; // q0[m]: fragment m's first query
#pragma unroll
    for (int m = 0; m < FWD_M; m++) q0[m] = qBlock + (WG ? 64 * m + 16 * warp : 16 * (FWD_M * warp + m));
    long qs = (long) h * HD, ks = (long) hkv * HD;
    const bf16* qb = q + (long) b * t_len * qs + head * HD;
    const bf16* kb = k + (long) b * t_len * ks + kvh * HD;
    const bf16* vb = v + (long) b * t_len * ks + kvh * HD;
    load_tile_for<WG>(kTiles[0], kb, ks, 0, t_len);
    load_tile_for<WG>(vTiles[0], vb, ks, 0, t_len);
    copy_commit();
    unsigned qa[FWD_M][KSTEPS][4], pa[FWD_M][TILE / 16][4];
#pragma unroll
    for (int m = 0; m < FWD_M; m++) load_a(qa[m], qb, qs, q0[m], t_len);
    float o[FWD_M][DTILES][4] = {}, s[FWD_M][NTILES][4];
    float mx[FWD_M][2], l[FWD_M][2] = {}, scale2 = scale * LOG2E; // mx: the rows' largest unscaled scores
#pragma unroll
    for (int m = 0; m < FWD_M; m++) mx[m][0] = mx[m][1] = -INFINITY;
    int last = min(qBlock + FWD_ROWS - 1, t_len - 1);
    for (int k0 = 0, cur = 0; k0 <= last; k0 += TILE, cur ^= 1) {
        next_kv<WG>(kTiles, vTiles, kb, vb, ks, k0, cur, last, t_len);
        const bf16 *kTile = kTiles[cur], *vTile = vTiles[cur];
        if (WG) {
            pin(s[0]); // the last tile's softmax wrote them
            pin(s[1]);
            wgmma_fence();
            for (int m = 0; m < FWD_M; m++) wg_scores(s[m], qa[m], kTile);
            wgmma_wait(s[0], s[1]);
        } else {
            scores(s, qa, kTile);
        }
        // Only tiles reaching past a fragment's first query need the causal mask; key <= row also hides keys past
        // t_len from every row written. Scores stay unscaled (scale > 0 keeps their order) until the exponent.
#pragma unroll
        for (int m = 0; m < FWD_M; m++)
            if (k0 + TILE > q0[m])
#pragma unroll
                for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        if (k0 + nt * 8 + 2 * t + (e & 1) > q0[m] + g + (e >> 1) * 8) s[m][nt][e] = -INFINITY;
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
        if (WG) {
            pin(o[0]); // rescaled above
            pin(o[1]);
            for (int m = 0; m < FWD_M; m++) wg_accumulate(o[m], s[m], pa[m], vTile);
            wgmma_wait(o[0], o[1]);
            pin(pa[0]);
            pin(pa[1]);
        } else {
            accumulate(o, s, vTile);
        }
        __syncthreads(); // every warp is done with these tiles before the next copy into them
    }
#pragma unroll
    for (int m = 0; m < FWD_M; m++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            int row = q0[m] + g + 8 * r;
            float sum = quad_sum(l[m][r]);
            if (row >= t_len) continue;
            bf16* orow = out + ((long) b * t_len + row) * qs + head * HD;
#pragma unroll
            for (int dt = 0; dt < DTILES; dt++)
                *reinterpret_cast<unsigned*>(orow + dt * 8 + 2 * t) = bf16x2(o[m][dt][2 * r] / sum, o[m][dt][2 * r + 1] / sum);
            if (t == 0) lse[((long) b * h + head) * t_len + row] = mx[m][r] * scale + logf(sum);
        }
}

#define ATTENTION_FWD_ARGS const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, int t_len, int h, int hkv, float scale
extern "C" __global__ void __launch_bounds__(128) attention_mma_fwd(ATTENTION_FWD_ARGS)
    { attention_fwd<false>(q, k, v, out, lse, t_len, h, hkv, scale); }
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
extern "C" __global__ void __launch_bounds__(128) attention_wgmma_fwd(ATTENTION_FWD_ARGS)
    { attention_fwd<true>(q, k, v, out, lse, t_len, h, hkv, scale); }
#endif

// The backward, FlashAttention-2's way: a block owns 64 keys (16 a warp) and walks the queries of every head in its
// group, accumulating dk = scale · Σ dSᵀ·Q and dv = Σ Pᵀ·dO in registers, where dS = P∘(dP − delta), dP = dO·Vᵀ.
// dq = scale · Σ_keys dS·K takes a share of every query tile's dS through shared memory and is added, unscaled,
// into the f32 dq_acc (B,T,H,D) by vector atomics; attention_dq_finish scales it into dq. One pass over Q and dO
// instead of a second kernel recomputing QKᵀ and dO·Vᵀ for dq. WG: the four products with Q and dO tiles run on
// wgmma (sm_90a), which reads the tiles from shared memory once for the block instead of once a warp.
template <bool WG> __device__ __forceinline__ void attention_bwd(const bf16* dout, const bf16* q, const bf16* k,
        const bf16* v, const float* lse, const float* delta, float* dq_acc, bf16* dk, bf16* dv, int t_len, int h, int hkv, float scale) {
    constexpr int QTILE = WG ? SWIZZLED_TILE : TILE * SROW;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    __shared__ __align__(1024) bf16 qTiles[2][QTILE], oTiles[2][QTILE];
    __shared__ __align__(16) bf16 dsTile[TILE * SROW]; // dSᵀ, keys x queries
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
        load_tile_for<WG>(qTiles[buf], q + (long) b * t_len * qs + head * HD, qs, q0, t_len);
        load_tile_for<WG>(oTiles[buf], dout + (long) b * t_len * qs + head * HD, qs, q0, t_len);
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
        if (WG) fence_async_shared();
        __syncthreads();
        int head = kvh * group + i / perHead, q0 = kBlock + i % perHead * TILE;
        const bf16 *qTile = qTiles[cur], *oTile = oTiles[cur];
        const float *lseTile = lseTiles[cur], *deltaTile = deltaTiles[cur];
        if (WG) {
            pin(s); // the last tile's softmax wrote them
            pin(dp);
            wgmma_fence();
            wg_scores(s, ka[0], qTile); // Sᵀ: keys x queries
            wg_scores(dp, va[0], oTile); // dPᵀ
            wgmma_wait(s, dp);
        } else {
            scores(st, ka, qTile);
            scores(dpt, va, oTile);
        }
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
        unsigned pa[TILE / 16][4], dsa[TILE / 16][4];
        if (WG) {
            wg_accumulate(dvAcc[0], s, pa, oTile);
            wg_accumulate(dkAcc[0], dp, dsa, qTile);
        } else {
            accumulate(dvAcc, st, oTile);
            accumulate(dkAcc, dpt, qTile);
        }
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
                for (int n = 0; n < 2; n++) {
                    float* at = qAcc + (long) row * qs + n * 8 + 2 * t;
#if __CUDA_ARCH__ >= 900
                    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" :: "l"(at), "f"(c[n][2 * r]), "f"(c[n][2 * r + 1]) : "memory");
#else // vector atomics came with sm_90
                    atomicAdd(at, c[n][2 * r]);
                    atomicAdd(at + 1, c[n][2 * r + 1]);
#endif
                }
            }
        }
        if (WG) { // dq's products ran beside dV's and dK's; pa and dsa stayed untouched
            wgmma_wait(dvAcc[0], dkAcc[0]);
            pin(pa);
            pin(dsa);
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

#define ATTENTION_BWD_ARGS const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse, const float* delta, \
        float* dq_acc, bf16* dk, bf16* dv, int t_len, int h, int hkv, float scale
extern "C" __global__ void __launch_bounds__(128) attention_mma_bwd(ATTENTION_BWD_ARGS)
    { attention_bwd<false>(dout, q, k, v, lse, delta, dq_acc, dk, dv, t_len, h, hkv, scale); }
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
extern "C" __global__ void __launch_bounds__(128) attention_wgmma_bwd(ATTENTION_BWD_ARGS)
    { attention_bwd<true>(dout, q, k, v, lse, delta, dq_acc, dk, dv, t_len, h, hkv, scale); }
#endif

// dq = scale · dq_acc, into the activations' bf16.
extern "C" __global__ void attention_dq_finish(const float* dq_acc, bf16* dq, long n, float scale) {
    map1(dq_acc, dq, n, [=](float x) { return x * scale; });
}
