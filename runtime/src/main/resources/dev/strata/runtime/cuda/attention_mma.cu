// Causal attention with grouped-query heads on bf16 tensor cores with f32 accumulation, in the FlashAttention-2
// manner: online softmax, only the log-sum-exp of each row kept, never a (T,T) matrix. Each pass comes twice: on
// mma.sync m16n8k16 (sm_80 on) and on Hopper's wgmma (sm_90a), sharing everything but the products.
// q, dq (B,T,H,D); k, v, dk, dv (B,T,Hkv,D); lse, delta (B,H,T) f32. Head size D = 64. A block of 4 warps owns
// 128 queries in the forward (32 per warp) and 64 keys in the backward (16 per warp), and walks the other side 64
// rows at a time through shared memory: two buffers, the next tile streaming in by cp.async while the current one
// is worked on.
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
// A block's four warps form one warpgroup, and wgmma.m64n64k16 multiplies its 64 rows of A (warp w: rows 16w..) by
// 16 x 64 of B, which the tensor cores read from shared memory themselves, once for all four warps (A too, or from
// registers in mma.sync's fragment layout; accumulators as above). With mma.sync every warp loads every B fragment
// into registers, and those shared-memory reads bounded the kernels. Tiles are 64 rows of 128 bytes in the 128-byte
// swizzle that wgmma's descriptors name (mode 1): the 16-byte chunk c of row r sits at chunk c ^ (r % 8), tiles
// aligned to 1024 bytes.
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

// The descriptor of k-step ks of a swizzled tile as an operand: contracted along its rows (K-major, as K and Q are
// for Q·Kᵀ: a step is 16 columns, 32 bytes on) or down its columns (MN-major, as V is for P·V: a step is 16 rows,
// 2 KB on). Groups of 8 rows lie
// 1024 bytes apart; the leading offset is unused by both (one 128-byte row spans the 64 columns).
__device__ __forceinline__ unsigned long long tile_desc(const bf16* tile, bool mnMajor, int ks) {
    unsigned long long start = (shared_address(tile) + (mnMajor ? ks * 2048 : ks * 32)) >> 4;
    return (start & 0x3fff) | (unsigned long long) (mnMajor ? 64 : 1) << 16 | 64ull << 32 | 1ull << 62;
}

// wgmma.m64n64k16 with f32 accumulators: a thread's 32, acc[n][e] for the eight 8-column tiles n, laid out as
// mma.sync's C fragments; operands %0..%31 of the asm.
#define WGMMA_D "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}"
#define WGMMA_ACC(acc) \
    "+f"(acc[0][0]), "+f"(acc[0][1]), "+f"(acc[0][2]), "+f"(acc[0][3]), "+f"(acc[1][0]), "+f"(acc[1][1]), "+f"(acc[1][2]), "+f"(acc[1][3]), \
    "+f"(acc[2][0]), "+f"(acc[2][1]), "+f"(acc[2][2]), "+f"(acc[2][3]), "+f"(acc[3][0]), "+f"(acc[3][1]), "+f"(acc[3][2]), "+f"(acc[3][3]), \
    "+f"(acc[4][0]), "+f"(acc[4][1]), "+f"(acc[4][2]), "+f"(acc[4][3]), "+f"(acc[5][0]), "+f"(acc[5][1]), "+f"(acc[5][2]), "+f"(acc[5][3]), \
    "+f"(acc[6][0]), "+f"(acc[6][1]), "+f"(acc[6][2]), "+f"(acc[6][3]), "+f"(acc[7][0]), "+f"(acc[7][1]), "+f"(acc[7][2]), "+f"(acc[7][3])

// acc (this warp's 16 rows x 64) = or += A (16 x 16, this warp's rows, in registers) · B (16 x 64 from shared
// memory), asynchronously: complete after wgmma_commit and wgmma_wait.
template <int MN_MAJOR> __device__ __forceinline__ void wgmma64(float (&acc)[NTILES][4], const unsigned (&a)[4], unsigned long long desc, int accumulate) {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %38, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WGMMA_D ", {%32,%33,%34,%35}, %36, p, 1, 1, %37;\n}\n"
                 : WGMMA_ACC(acc) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "n"(MN_MAJOR), "r"(accumulate));
#endif
}

// acc = or += A (64 x 16 from shared memory: this warp's 16 rows of it) · B (16 x 64 from shared memory).
template <int A_MN_MAJOR, int B_MN_MAJOR> __device__ __forceinline__ void wgmma64ss(float (&acc)[NTILES][4], unsigned long long descA,
        unsigned long long descB, int accumulate) {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %36, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WGMMA_D ", %32, %33, p, 1, 1, %34, %35;\n}\n"
                 : WGMMA_ACC(acc) : "l"(descA), "l"(descB), "n"(A_MN_MAJOR), "n"(B_MN_MAJOR), "r"(accumulate));
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

// Closes the group of wgmma this thread issued since the last commit.
__device__ __forceinline__ void wgmma_commit() {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
#endif
}

// Waits until at most PENDING committed groups are in flight (they complete in order); pin the accumulators read next.
template <int PENDING> __device__ __forceinline__ void wgmma_wait() {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    asm volatile("wgmma.wait_group.sync.aligned %0;" :: "n"(PENDING) : "memory");
#endif
}

// Copies written through the generic proxy (cp.async, st.shared) become visible to wgmma's reads.
__device__ __forceinline__ void fence_async_shared() {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}

// P's A fragment for k-step ks in bf16: its C tiles 2ks and 2ks + 1 are the A fragment's two column halves.
__device__ __forceinline__ void p_fragment(unsigned (&a)[4], const float (&p)[NTILES][4], int ks) {
    a[0] = bf16x2(p[2 * ks][0], p[2 * ks][1]);
    a[1] = bf16x2(p[2 * ks][2], p[2 * ks][3]);
    a[2] = bf16x2(p[2 * ks + 1][0], p[2 * ks + 1][1]);
    a[3] = bf16x2(p[2 * ks + 1][2], p[2 * ks + 1][3]);
}

// out += P (this warp's 16 rows x TILE, in C layout) · V, V the swizzled tile (TILE rows x HD): accumulate on wgmma.
// The A fragments are built into `a`, which must stay untouched until the wait.
__device__ __forceinline__ void wg_accumulate(float (&out)[DTILES][4], const float (&p)[NTILES][4], unsigned (&a)[TILE / 16][4], const bf16* tile) {
#pragma unroll
    for (int ks = 0; ks < TILE / 16; ks++) p_fragment(a[ks], p, ks);
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
        for (int m = 0; m < M; m++) p_fragment(a[m], p[m], ks);
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

// The forward: 128 queries a block, 32 a warp (two row fragments m, so mma.sync's warps share every K and V
// fragment they read from shared memory between two; wgmma reads them once for the block anyway).

#define FWD_M 2
#define FWD_ROWS (4 * 16 * FWD_M)

// Hides keys after each row's query (and so keys past t_len from every row written), and with packed documents the
// keys before the row's document (first: the starts of this thread's rows g and g + 8); s holds one tile's scores
// from key k0 for the 16 queries from q0. Unpacked, only tiles reaching past q0 need it.
__device__ __forceinline__ void causal_mask(float (&s)[NTILES][4], int k0, int q0, const int (&first)[2], bool packed) {
    int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    if (packed || k0 + TILE > q0)
#pragma unroll
        for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int key = k0 + nt * 8 + 2 * t + (e & 1);
                if (key > q0 + g + (e >> 1) * 8 || key < first[e >> 1]) s[nt][e] = -INFINITY;
            }
}

// Where the documents of a fragment's rows g and g + 8 (from q0) begin; 0 unpacked.
__device__ __forceinline__ void row_starts(int (&first)[2], const int* starts, int b, int q0, int t_len) {
    int g = (threadIdx.x & 31) >> 2;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int row = q0 + g + 8 * r;
        first[r] = starts && row < t_len ? starts[(long) b * t_len + row] : 0;
    }
}

// Online softmax over one tile of a fragment's scores: rows' running max mx (unscaled: scale > 0 keeps the order)
// and sum l move on, the output o is rescaled, s becomes the tile's probabilities (base 2, log2 e in scale2).
__device__ __forceinline__ void online_softmax(float (&s)[NTILES][4], float (&mx)[2], float (&l)[2], float (&o)[DTILES][4], float scale2) {
    float tileMax[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) tileMax[e >> 1] = fmaxf(tileMax[e >> 1], s[nt][e]);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float mNew = fmaxf(mx[r], quad_max(tileMax[r]));
        float base = (mNew == -INFINITY ? 0.f : mNew) * scale2, corr = exp2_approx(fmaf(mx[r], scale2, -base));
        l[r] *= corr;
#pragma unroll
        for (int dt = 0; dt < DTILES; dt++) { o[dt][2 * r] *= corr; o[dt][2 * r + 1] *= corr; }
#pragma unroll
        for (int nt = 0; nt < NTILES; nt++) {
            s[nt][2 * r] = exp2_approx(fmaf(s[nt][2 * r], scale2, -base));
            s[nt][2 * r + 1] = exp2_approx(fmaf(s[nt][2 * r + 1], scale2, -base));
            l[r] += s[nt][2 * r] + s[nt][2 * r + 1];
        }
        mx[r] = mNew;
    }
}

// A fragment's 16 output rows from q0 (o / l) and their log-sum-exp (natural base).
__device__ __forceinline__ void store_rows(const float (&o)[DTILES][4], const float (&mx)[2], const float (&l)[2], bf16* out,
        float* lse, int b, int head, int q0, int t_len, int h, float scale) {
    int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int row = q0 + g + 8 * r;
        float sum = quad_sum(l[r]);
        if (row >= t_len) continue;
        bf16* orow = out + ((long) b * t_len + row) * h * HD + head * HD;
#pragma unroll
        for (int dt = 0; dt < DTILES; dt++)
            *reinterpret_cast<unsigned*>(orow + dt * 8 + 2 * t) = bf16x2(o[dt][2 * r] / sum, o[dt][2 * r + 1] / sum);
        if (t == 0) lse[((long) b * h + head) * t_len + row] = mx[r] * scale + logf(sum);
    }
}

#define ATTENTION_FWD_ARGS const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, int t_len, int h, int hkv, float scale, \
        const int* starts

// Grids of both passes are (heads x batch, blocks along the sequence): the GPU starts blocks in the order of their
// linear index, x fastest, so every head's longest block (under the causal mask: the forward's last queries, the
// backward's first keys) starts before any shorter one, and the short ones fill the tail. With the sequence along
// x, the long blocks of the last heads started last and a quarter of the backward's SM time went idle.
// mma.sync: warp w holds queries 32w.. of the block (fragment m: 32w + 16m..), Q as A fragments in registers.
extern "C" __global__ void __launch_bounds__(128) attention_mma_fwd(ATTENTION_FWD_ARGS) {
    int warp = threadIdx.x >> 5;
    __shared__ __align__(16) bf16 kTiles[2][TILE * SROW], vTiles[2][TILE * SROW];
    int head = blockIdx.x % h, b = blockIdx.x / h, kvh = head / (h / hkv);
    // warps past t_len still help load the tiles
    int qBlock = (gridDim.y - 1 - blockIdx.y) * FWD_ROWS, q0 = qBlock + warp * 16 * FWD_M;
    long qs = (long) h * HD, ks = (long) hkv * HD;
    const bf16* kb = k + (long) b * t_len * ks + kvh * HD;
    const bf16* vb = v + (long) b * t_len * ks + kvh * HD;
    load_tile(kTiles[0], kb, ks, 0, t_len);
    load_tile(vTiles[0], vb, ks, 0, t_len);
    copy_commit();
    unsigned qa[FWD_M][KSTEPS][4];
#pragma unroll
    for (int m = 0; m < FWD_M; m++) load_a(qa[m], q + (long) b * t_len * qs + head * HD, qs, q0 + 16 * m, t_len);
    float o[FWD_M][DTILES][4] = {}, s[FWD_M][NTILES][4], mx[FWD_M][2], l[FWD_M][2] = {}, scale2 = scale * LOG2E;
    int first[FWD_M][2];
#pragma unroll
    for (int m = 0; m < FWD_M; m++) {
        mx[m][0] = mx[m][1] = -INFINITY;
        row_starts(first[m], starts, b, q0 + 16 * m, t_len);
    }
    int last = min(qBlock + FWD_ROWS - 1, t_len - 1);
    for (int k0 = 0, cur = 0; k0 <= last; k0 += TILE, cur ^= 1) {
        if (k0 + TILE <= last) { // the next tiles stream in while these are worked on
            load_tile(kTiles[cur ^ 1], kb, ks, k0 + TILE, t_len);
            load_tile(vTiles[cur ^ 1], vb, ks, k0 + TILE, t_len);
        }
        copy_commit();
        copy_wait<1>();
        __syncthreads();
        scores(s, qa, kTiles[cur]);
#pragma unroll
        for (int m = 0; m < FWD_M; m++) {
            causal_mask(s[m], k0, q0 + 16 * m, first[m], starts != nullptr);
            online_softmax(s[m], mx[m], l[m], o[m], scale2);
        }
        accumulate(o, s, vTiles[cur]);
        __syncthreads(); // every warp is done with these tiles before the next copy into them
    }
#pragma unroll
    for (int m = 0; m < FWD_M; m++) store_rows(o[m], mx[m], l[m], out, lse, b, head, q0 + 16 * m, t_len, h, scale);
}

#ifdef __CUDA_ARCH_FEAT_SM90_ALL
// wgmma: fragment m of warp w holds queries 64m + 16w.. of the block (a warpgroup's 64 rows); Q, K and V as swizzled
// tiles in shared memory, so only the accumulators and P stay in registers, few enough for three blocks an SM.
// Dynamic shared memory (CudaBackend's WGMMA_FWD_SHARED): Q (128 rows), two K and two V tiles, 1 KB to align.
extern "C" __global__ void __launch_bounds__(128, 3) attention_wgmma_fwd(ATTENTION_FWD_ARGS) {
    extern __shared__ unsigned char shared[];
    bf16* qTile = (bf16*) (shared + ((1024 - (shared_address(shared) & 1023)) & 1023));
    bf16 *kTiles = qTile + FWD_M * SWIZZLED_TILE, *vTiles = kTiles + 2 * SWIZZLED_TILE; // two buffers each
    int warp = threadIdx.x >> 5;
    int head = blockIdx.x % h, b = blockIdx.x / h, kvh = head / (h / hkv);
    int qBlock = (gridDim.y - 1 - blockIdx.y) * FWD_ROWS, q0[FWD_M]; // q0[m]: fragment m's first query
#pragma unroll
    for (int m = 0; m < FWD_M; m++) q0[m] = qBlock + 64 * m + 16 * warp;
    long qs = (long) h * HD, ks = (long) hkv * HD;
    const bf16* kb = k + (long) b * t_len * ks + kvh * HD;
    const bf16* vb = v + (long) b * t_len * ks + kvh * HD;
#pragma unroll
    for (int m = 0; m < FWD_M; m++) load_swizzled(qTile + m * SWIZZLED_TILE, q + (long) b * t_len * qs + head * HD, qs, qBlock + 64 * m, t_len);
    load_swizzled(kTiles, kb, ks, 0, t_len);
    load_swizzled(vTiles, vb, ks, 0, t_len);
    copy_commit();
    float o[FWD_M][DTILES][4] = {}, s[FWD_M][NTILES][4], mx[FWD_M][2], l[FWD_M][2] = {}, scale2 = scale * LOG2E;
    unsigned pa[FWD_M][TILE / 16][4];
    int first[FWD_M][2];
#pragma unroll
    for (int m = 0; m < FWD_M; m++) {
        mx[m][0] = mx[m][1] = -INFINITY;
        row_starts(first[m], starts, b, q0[m], t_len);
    }
    int last = min(qBlock + FWD_ROWS - 1, t_len - 1);
    for (int k0 = 0, cur = 0; k0 <= last; k0 += TILE, cur ^= 1) {
        copy_wait<0>();
        fence_async_shared();
        __syncthreads(); // these tiles are in; every warp is done with the last ones, whose buffers are next
        if (k0 + TILE <= last) {
            load_swizzled(kTiles + (cur ^ 1) * SWIZZLED_TILE, kb, ks, k0 + TILE, t_len);
            load_swizzled(vTiles + (cur ^ 1) * SWIZZLED_TILE, vb, ks, k0 + TILE, t_len);
        }
        copy_commit();
        const bf16 *kTile = kTiles + cur * SWIZZLED_TILE, *vTile = vTiles + cur * SWIZZLED_TILE;
        pin(s[0]); // the last tile's softmax wrote them
        pin(s[1]);
        wgmma_fence();
#pragma unroll
        for (int m = 0; m < FWD_M; m++)
#pragma unroll
            for (int kk = 0; kk < KSTEPS; kk++) wgmma64ss<0, 0>(s[m], tile_desc(qTile + m * SWIZZLED_TILE, false, kk), tile_desc(kTile, false, kk), kk > 0);
        wgmma_commit();
        wgmma_wait<0>();
        pin(s[0]);
        pin(s[1]);
#pragma unroll
        for (int m = 0; m < FWD_M; m++) {
            causal_mask(s[m], k0, q0[m], first[m], starts != nullptr);
            online_softmax(s[m], mx[m], l[m], o[m], scale2);
        }
        pin(o[0]); // rescaled
        pin(o[1]);
#pragma unroll
        for (int m = 0; m < FWD_M; m++) wg_accumulate(o[m], s[m], pa[m], vTile);
        wgmma_commit();
        wgmma_wait<0>();
        pin(o[0]);
        pin(o[1]);
        pin(pa[0]);
        pin(pa[1]);
    }
#pragma unroll
    for (int m = 0; m < FWD_M; m++) store_rows(o[m], mx[m], l[m], out, lse, b, head, q0[m], t_len, h, scale);
}
#endif

// The backward, FlashAttention-2's way: a block owns 64 keys (16 a warp) and walks the queries of every head in its
// group, accumulating dk = scale · Σ dSᵀ·Q and dv = Σ Pᵀ·dO in registers, where dS = P∘(dP − delta), dP = dO·Vᵀ.
// dq = scale · Σ_keys dS·K takes a share of every query tile's dS through shared memory and is added, unscaled,
// into the f32 dq_acc (B,T,H,D) by vector atomics; attention_dq_finish scales it into dq. Deterministic (part > 0):
// key block y stores its share into its own part, dq_acc + y·part, and attention_dq_reduce adds them in order. One pass over Q and dO
// instead of a second kernel recomputing QKᵀ and dO·Vᵀ for dq. Two kernels share the pieces below: mma.sync's and
// Hopper's wgmma.

// Tile i of a key block's walk: query head kvh·group + i / perHead, queries from kBlock + (i % perHead)·TILE.
struct QueryWalk {
    int kBlock, kvh, group, perHead, tiles;
    __device__ QueryWalk(int kBlock, int kvh, int group, int t_len)
        : kBlock(kBlock), kvh(kvh), group(group), perHead((t_len - kBlock + TILE - 1) / TILE), tiles(group * perHead) {}
    __device__ int head(int i) const { return kvh * group + i / perHead; }
    __device__ int q0(int i) const { return kBlock + i % perHead * TILE; }
};

// Starts copying query tile i's Q and dO, and loads its lse (in base 2), delta and document starts. Queries past
// t_len get lse = +inf, so their P is 0 without a mask.
template <bool WG> __device__ __forceinline__ void fetch_queries(const QueryWalk& w, int i, const bf16* q, const bf16* dout,
        const float* lse, const float* delta, const int* starts, int b, int t_len, int h, bf16* qTile, bf16* oTile, float* lseTile,
        float* deltaTile, int* startTile) {
    long qs = (long) h * HD;
    int head = w.head(i), q0 = w.q0(i);
    load_tile_for<WG>(qTile, q + (long) b * t_len * qs + head * HD, qs, q0, t_len);
    load_tile_for<WG>(oTile, dout + (long) b * t_len * qs + head * HD, qs, q0, t_len);
    if (threadIdx.x < TILE) {
        bool in = q0 + threadIdx.x < t_len;
        long at = ((long) b * h + head) * t_len + q0 + threadIdx.x;
        lseTile[threadIdx.x] = in ? lse[at] * LOG2E : INFINITY;
        deltaTile[threadIdx.x] = in ? delta[at] : 0.f;
        startTile[threadIdx.x] = in && starts ? starts[(long) b * t_len + q0 + threadIdx.x] : 0;
    }
}

// From a warp's Sᵀ and dPᵀ (16 keys from k0w x the tile's queries from q0): P into s, dS = P∘(dP − delta) into dp.
// On the diagonal tile a key sees only the queries at or after it; keys past t_len see none; packed, a key sees
// only the queries of its own document (startTile: where each query's begins).
__device__ __forceinline__ void probabilities(float (&s)[NTILES][4], float (&dp)[NTILES][4], const float* lseTile, const float* deltaTile,
        const int* startTile, bool packed, int q0, int kBlock, int k0w, float scale2) {
    int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    if (packed || q0 == kBlock)
#pragma unroll
        for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int query = nt * 8 + 2 * t + (e & 1), key = k0w + g + 8 * (e >> 1);
                if (q0 + query < key || key < startTile[query]) s[nt][e] = -INFINITY;
            }
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
    }
}

// Two neighbouring values added into dq_acc at `at`, atomically: every key block adds its share. Deterministic
// (store): each key block has a part of its own, written once, that attention_dq_reduce adds up in order.
__device__ __forceinline__ void add_dq(float* at, float x, float y, bool store) {
    if (store) {
        *reinterpret_cast<float2*>(at) = make_float2(x, y);
        return;
    }
#if __CUDA_ARCH__ >= 900
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" :: "l"(at), "f"(x), "f"(y) : "memory");
#else // vector atomics came with sm_90
    atomicAdd(at, x);
    atomicAdd(at + 1, y);
#endif
}

// This warp's rows of dk (scaled) and dv, keys from k0w.
__device__ __forceinline__ void store_dkdv(const float (&dkAcc)[DTILES][4], const float (&dvAcc)[DTILES][4], bf16* dk, bf16* dv,
        int b, int k0w, int kvh, int t_len, int hkv, float scale) {
    int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    long ks = (long) hkv * HD;
    for (int r = 0; r < 2; r++) {
        int key = k0w + g + 8 * r;
        if (key >= t_len) continue;
        bf16* krow = dk + ((long) b * t_len + key) * ks + kvh * HD;
        bf16* vrow = dv + ((long) b * t_len + key) * ks + kvh * HD;
        for (int dt = 0; dt < DTILES; dt++) {
            *reinterpret_cast<unsigned*>(krow + dt * 8 + 2 * t) = bf16x2(dkAcc[dt][2 * r] * scale, dkAcc[dt][2 * r + 1] * scale);
            *reinterpret_cast<unsigned*>(vrow + dt * 8 + 2 * t) = bf16x2(dvAcc[dt][2 * r], dvAcc[dt][2 * r + 1]);
        }
    }
}

#define ATTENTION_BWD_ARGS const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse, const float* delta, \
        float* dq_acc, bf16* dk, bf16* dv, int t_len, int h, int hkv, float scale, const int* starts, long part

// mma.sync: K and V of the warp's 16 keys in registers as A fragments; every product reads its B fragments from
// shared memory into registers, a warp at a time.
extern "C" __global__ void __launch_bounds__(128) attention_mma_bwd(ATTENTION_BWD_ARGS) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    __shared__ __align__(16) bf16 qTiles[2][TILE * SROW], oTiles[2][TILE * SROW], dsTile[TILE * SROW]; // dsTile: dSᵀ, keys x queries
    __shared__ __align__(8) float lseTiles[2][TILE], deltaTiles[2][TILE]; // lse in base 2
    __shared__ int startTiles[2][TILE];
    int kvh = blockIdx.x % hkv, b = blockIdx.x / hkv;
    QueryWalk walk(blockIdx.y * TILE, kvh, h / hkv, t_len);
    int k0w = walk.kBlock + warp * 16;
    long qs = (long) h * HD, ks = (long) hkv * HD;
    const bf16* kb = k + (long) b * t_len * ks + kvh * HD;
    const bf16* vb = v + (long) b * t_len * ks + kvh * HD;
    fetch_queries<false>(walk, 0, q, dout, lse, delta, starts, b, t_len, h, qTiles[0], oTiles[0], lseTiles[0], deltaTiles[0], startTiles[0]);
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
                int key = walk.kBlock + s * 16 + half * 8 + 2 * t, col = warp * 16 + n * 8 + g;
                float lo = key < t_len ? to_float(kb[(long) key * ks + col]) : 0.f;
                float hi = key + 1 < t_len ? to_float(kb[(long) (key + 1) * ks + col]) : 0.f;
                kf[s][n][half] = bf16x2(lo, hi);
            }
    float dkAcc[1][DTILES][4] = {}, dvAcc[1][DTILES][4] = {}, st[1][NTILES][4], dpt[1][NTILES][4], scale2 = scale * LOG2E;
    auto &s = st[0], &dp = dpt[0];
    for (int i = 0, cur = 0; i < walk.tiles; i++, cur ^= 1) {
        if (i + 1 < walk.tiles)
            fetch_queries<false>(walk, i + 1, q, dout, lse, delta, starts, b, t_len, h, qTiles[cur ^ 1], oTiles[cur ^ 1], lseTiles[cur ^ 1],
                    deltaTiles[cur ^ 1], startTiles[cur ^ 1]);
        copy_commit();
        copy_wait<1>();
        __syncthreads();
        int head = walk.head(i), q0 = walk.q0(i);
        const bf16 *qTile = qTiles[cur], *oTile = oTiles[cur];
        scores(st, ka, qTile);   // Sᵀ: keys x queries
        scores(dpt, va, oTile);  // dPᵀ
        probabilities(s, dp, lseTiles[cur], deltaTiles[cur], startTiles[cur], starts != nullptr, q0, walk.kBlock, k0w, scale2);
#pragma unroll
        for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
            for (int r = 0; r < 2; r++)
                *reinterpret_cast<unsigned*>(dsTile + (warp * 16 + g + 8 * r) * SROW + nt * 8 + 2 * t) = bf16x2(dp[nt][2 * r], dp[nt][2 * r + 1]);
        accumulate(dvAcc, st, oTile);
        accumulate(dkAcc, dpt, qTile);
        __syncthreads(); // dsTile holds every warp's keys
        // dq (64 queries x this warp's 16 columns) += dS · K: A fragments are dSᵀ read transposed, 16 queries at a time.
        float* qAcc = dq_acc + blockIdx.y * part + ((long) b * t_len + q0) * qs + head * HD + warp * 16;
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
                for (int n = 0; n < 2; n++) add_dq(qAcc + (long) row * qs + n * 8 + 2 * t, c[n][2 * r], c[n][2 * r + 1], part != 0);
            }
        }
        __syncthreads(); // every warp is done with these tiles and dsTile before they are written again
    }
    store_dkdv(dkAcc[0], dvAcc[0], dk, dv, b, k0w, kvh, t_len, hkv, scale);
}

#ifdef __CUDA_ARCH_FEAT_SM90_ALL
// wgmma: all five products on the warpgroup, K, V, Q, dO and dSᵀ as swizzled tiles in shared memory, read by the
// tensor cores once for the block. Only the accumulators and P's A fragments stay in registers (few enough for
// three blocks an SM), and dq's products (dS · K, both operands transposed) run beside dV's and dK's.
// Dynamic shared memory: K, V, two Q and two dO tiles, dSᵀ, then lse, delta and document starts for two query tiles
// (CudaBackend's WGMMA_BWD_SHARED, with 1 KB for alignment).
#define WG_BWD_TILES 7
extern "C" __global__ void __launch_bounds__(128, 3) attention_wgmma_bwd(ATTENTION_BWD_ARGS) {
    extern __shared__ unsigned char shared[];
    // swizzled tiles start on 1024-byte boundaries: the launch asks for 1 KB more than the tiles take
    bf16* tiles = (bf16*) (shared + ((1024 - (shared_address(shared) & 1023)) & 1023));
    bf16 *kTile = tiles, *vTile = tiles + SWIZZLED_TILE, *dsTile = tiles + 6 * SWIZZLED_TILE; // dsTile: dSᵀ, keys x queries
    bf16 *qTiles = tiles + 2 * SWIZZLED_TILE, *oTiles = tiles + 4 * SWIZZLED_TILE; // two buffers each
    float* lseTiles = (float*) (tiles + WG_BWD_TILES * SWIZZLED_TILE); // [2][TILE], lse in base 2, then deltaTiles [2][TILE]
    float* deltaTiles = lseTiles + 2 * TILE;
    int* startTiles = (int*) (deltaTiles + 2 * TILE);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int kvh = blockIdx.x % hkv, b = blockIdx.x / hkv;
    QueryWalk walk(blockIdx.y * TILE, kvh, h / hkv, t_len);
    int k0w = walk.kBlock + warp * 16;
    long qs = (long) h * HD, ks = (long) hkv * HD;
    load_swizzled(kTile, k + (long) b * t_len * ks + kvh * HD, ks, walk.kBlock, t_len);
    load_swizzled(vTile, v + (long) b * t_len * ks + kvh * HD, ks, walk.kBlock, t_len);
    fetch_queries<true>(walk, 0, q, dout, lse, delta, starts, b, t_len, h, qTiles, oTiles, lseTiles, deltaTiles, startTiles);
    copy_commit();
    float dkAcc[DTILES][4] = {}, dvAcc[DTILES][4] = {}, s[NTILES][4], dp[NTILES][4], dq[DTILES][4], scale2 = scale * LOG2E;
    unsigned pa[TILE / 16][4];
    for (int i = 0, cur = 0; i < walk.tiles; i++, cur ^= 1) {
        copy_wait<0>();
        fence_async_shared();
        __syncthreads(); // tile i is in; every warp is done with tile i - 1, whose buffers are next
        if (i + 1 < walk.tiles)
            fetch_queries<true>(walk, i + 1, q, dout, lse, delta, starts, b, t_len, h, qTiles + (cur ^ 1) * SWIZZLED_TILE,
                    oTiles + (cur ^ 1) * SWIZZLED_TILE, lseTiles + (cur ^ 1) * TILE, deltaTiles + (cur ^ 1) * TILE, startTiles + (cur ^ 1) * TILE);
        copy_commit();
        int head = walk.head(i), q0 = walk.q0(i);
        const bf16 *qTile = qTiles + cur * SWIZZLED_TILE, *oTile = oTiles + cur * SWIZZLED_TILE;
        pin(s); // the last tile's softmax wrote them
        pin(dp);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < KSTEPS; kk++) { // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ: keys x queries, contracted over the head
            wgmma64ss<0, 0>(s, tile_desc(kTile, false, kk), tile_desc(qTile, false, kk), kk > 0);
            wgmma64ss<0, 0>(dp, tile_desc(vTile, false, kk), tile_desc(oTile, false, kk), kk > 0);
        }
        wgmma_commit();
        wgmma_wait<0>();
        pin(s);
        pin(dp);
        probabilities(s, dp, lseTiles + cur * TILE, deltaTiles + cur * TILE, startTiles + cur * TILE, starts != nullptr, q0, walk.kBlock, k0w, scale2);
#pragma unroll
        for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                int key = warp * 16 + g + 8 * r;
                *reinterpret_cast<unsigned*>(dsTile + key * HD + (nt ^ (key & 7)) * 8 + 2 * t) = bf16x2(dp[nt][2 * r], dp[nt][2 * r + 1]);
            }
        fence_async_shared();
        __syncthreads(); // dsTile holds every warp's keys
        pin(dq); // the last tile's atomics read it
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < TILE / 16; kk++) // dq = dS·K, dSᵀ and K read transposed: first, so its atomics overlap the rest
            wgmma64ss<1, 1>(dq, tile_desc(dsTile, true, kk), tile_desc(kTile, true, kk), kk > 0);
        wgmma_commit();
#pragma unroll
        for (int kk = 0; kk < TILE / 16; kk++) // dK += dSᵀ·Q
            wgmma64ss<0, 1>(dkAcc, tile_desc(dsTile, false, kk), tile_desc(qTile, true, kk), 1);
        wg_accumulate(dvAcc, s, pa, oTile); // dV += Pᵀ·dO
        wgmma_commit();
        wgmma_wait<1>();
        pin(dq);
        // dq: this warp's 16 queries from q0 + 16·warp, all 64 head columns
        float* qAcc = dq_acc + blockIdx.y * part + ((long) b * t_len + q0 + warp * 16) * qs + head * HD;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            if (q0 + warp * 16 + g + 8 * r >= t_len) continue;
#pragma unroll
            for (int dt = 0; dt < DTILES; dt++) add_dq(qAcc + (long) (g + 8 * r) * qs + dt * 8 + 2 * t, dq[dt][2 * r], dq[dt][2 * r + 1], part != 0);
        }
        wgmma_wait<0>();
        pin(dkAcc);
        pin(dvAcc);
        pin(pa);
    }
    store_dkdv(dkAcc, dvAcc, dk, dv, b, k0w, kvh, t_len, hkv, scale);
}
#endif

// dq = scale · dq_acc, into the activations' bf16.
extern "C" __global__ void attention_dq_finish(const float* dq_acc, bf16* dq, long n, float scale) {
    map1(dq_acc, dq, n, [=](float x) { return x * scale; });
}

// Deterministic dq: each query's shares from the key blocks at or before it (parts + y·n, y = 0, 1, ...), added
// in that order and scaled, into bf16. The same sum every run, at the cost of a part of (B,T,H,D) per key block.
extern "C" __global__ void attention_dq_reduce(const float* parts, bf16* dq, long n, long row, int t_len, float scale) {
    GRID_STRIDE(i, n) {
        int query = (int) (i / row % t_len);
        float sum = 0.f;
        for (int y = 0; y <= query / TILE; y++) sum += parts[y * n + i];
        dq[i] = from_float<bf16>(sum * scale);
    }
}
