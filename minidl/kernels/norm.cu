// Batch norm over x shaped (N, C, S) (S = the spatial size, 1 for (N, C) inputs), with the ReLU
// and the residual add that may follow it. Four kernels: forward = bn_stats + bn_apply,
// backward = bn_backward_sums + bn_backward_dx (math and twins in norm.py).
//
// Layouts. Element (n, c, s) of an array lives at  n * sn + c * sc + s  (in elements): the S
// values of one (n, c) are contiguous, and the two strides say how samples and channels are laid
// out. A C-contiguous (N, C, S) array has sn = C*S, sc = S; a conv output, an (N, C, H, W) view
// of (C, N, H, W) storage, has sn = S, sc = N*S. Each array brings its own (sn, sc).
//
// Per-channel reductions (bn_stats, bn_backward_sums): one block of up to 512 threads per channel
// (grid-stride over channels), its threads walk the channel's M = N*S values in (n, s) order, so
// neighbouring threads read neighbouring s (coalesced), and add up in double; a tree in shared
// memory sums the block's partial sums. Many threads, each loading UNROLL values before adding them,
// keep many loads in flight: a block is one SM's work, and a few dozen channels must keep the memory busy.
// Elementwise kernels (bn_apply, bn_backward_dx) run one thread per element i of x's storage
// (and of y or dx: same layout), grid-stride.
//
// Indexing without dividing: a 64-bit division costs tens of instructions, more than an element's
// memory traffic, so no loop divides per element. A Walk keeps the digits (a, b, s) of an index
// i = (a * B + b) * S + s and moves them by a fixed step with additions and carries; it divides
// only when it starts. x's storage is (n, c, s) digits (B = C) or, channel-major, (c, n, s) (B = N).
//
// No #include: NVRTC compiles this with no CUDA headers; rsqrtf, fmaxf are built in.

#define MAX_BLOCK 512  // threads per block of the reductions: a power of 2, at most this (norm.REDUCE_BLOCK)
#define UNROLL 8       // values a reduction thread loads before it adds them

// The digits (a, b, s) of i = (a * B + b) * S + s, advanced by `step` per next() with carries.
struct Walk {
    long long a, b, s, da, db, ds, B, S;
    __device__ Walk(long long i, long long step, long long B_, long long S_) : B(B_), S(S_) {
        a = i / (B * S), b = i / S % B, s = i % S;
        da = step / (B * S), db = step / S % B, ds = step % S;
    }
    __device__ void next() {  // db < B and ds < S, so one carry per digit is enough
        s += ds, b += db, a += da;
        if (s >= S) s -= S, b += 1;
        if (b >= B) b -= B, a += 1;
    }
};

// (n, c) of x's storage element at walk w: channel-major storage (sc > sn) has digits (c, n, s).
__device__ void sample_and_channel(const Walk& w, long long sn, long long sc, long long* n, long long* c) {
    *n = sc > sn ? w.b : w.a;
    *c = sc > sn ? w.a : w.b;
}

// A Walk over x's storage: digits (n, c, s) or, channel-major, (c, n, s).
__device__ Walk storage_walk(long long i, long long step, long long sn, long long sc, long long N, long long C,
                             long long S) {
    return Walk(i, step, sc > sn ? N : C, S);
}

// Sum `value` and `value2` over the block (blockDim.x a power of 2); thread 0 gets the totals.
__device__ void block_sum2(double* value, double* value2) {
    __shared__ double a[MAX_BLOCK], b[MAX_BLOCK];
    a[threadIdx.x] = *value;
    b[threadIdx.x] = *value2;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            a[threadIdx.x] += a[threadIdx.x + half];
            b[threadIdx.x] += b[threadIdx.x + half];
        }
        __syncthreads();
    }
    *value = a[0];
    *value2 = b[0];
    __syncthreads();  // a and b are reused by the next channel
}

// Per channel c: mean[c] and the biased var[c] of its M = N*S values, in ONE pass: the sum and the
// sum of squares in double, var = E[x^2] - mean^2. In float32 that subtraction would cancel every
// digit when |mean| >> std; in double it keeps 16 - 2*log10(|mean|/std) digits, more than float32's
// 7 unless |mean|/std > 1e4 (a second pass over x, or Welford's update per value, would cost more).
// If update: running_mean/var = (1 - momentum) * running + momentum * (mean, var * M / (M - 1)),
// on the device, so nobody waits for the numbers. (Without running stats the caller passes
// mean and var again with update = 0.)
extern "C" __global__ void bn_stats(const float* x, long long sn, long long sc, long long N, long long C, long long S,
                                    float* mean, float* var, float* running_mean, float* running_var, float momentum,
                                    int update) {
    long long M = N * S;
    for (long long c = blockIdx.x; c < C; c += gridDim.x) {
        double sum = 0.0, sum2 = 0.0;
        Walk w(threadIdx.x, blockDim.x, N, S);  // i = n * S + s: digits (0, n, s)
        for (long long i = threadIdx.x; i < M; i += UNROLL * blockDim.x) {
            float v[UNROLL];  // UNROLL loads first (all in flight at once), then the sums
            for (int k = 0; k < UNROLL; k++, w.next())
                v[k] = i + k * blockDim.x < M ? x[w.b * sn + c * sc + w.s] : 0.0f;  // a 0 past the end adds nothing
            for (int k = 0; k < UNROLL; k++) {
                sum += v[k];
                sum2 += (double)v[k] * v[k];
            }
        }
        block_sum2(&sum, &sum2);
        if (threadIdx.x == 0) {
            double mu = sum / M, v = sum2 / M - mu * mu;
            v = v > 0.0 ? v : 0.0;  // rounding can leave a tiny negative for a constant channel
            mean[c] = (float)mu;
            var[c] = (float)v;
            if (update) {
                running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * (float)mu;
                running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (float)(v * M / (M - 1));
            }
        }
    }
}

// y = act(gamma * (x - mean) * rsqrt(var + eps) + beta) [+ residual], act = relu if relu else identity.
// y has x's layout (sn, sc); the residual has its own (rn, rc) (ignored unless has_residual).
extern "C" __global__ void bn_apply(const float* x, long long sn, long long sc, const float* residual, long long rn,
                                    long long rc, int has_residual, const float* mean, const float* var,
                                    const float* gamma, const float* beta, float eps, int relu, float* y,
                                    long long N, long long C, long long S) {
    long long total = N * C * S, first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    long long step = (long long)gridDim.x * blockDim.x, n, c;
    Walk w = storage_walk(first, step, sn, sc, N, C, S);
    for (long long i = first; i < total; i += step, w.next()) {
        sample_and_channel(w, sn, sc, &n, &c);
        float scale = gamma[c] * rsqrtf(var[c] + eps);
        float out = (x[i] - mean[c]) * scale + beta[c];
        if (relu) out = fmaxf(out, 0.0f);
        if (has_residual) out += residual[n * rn + c * rc + w.s];
        y[i] = out;
    }
}

// The gradient that reaches z = gamma * x_hat + beta: dy, masked by the ReLU (z > 0) if relu.
__device__ float grad_z(float dy, float x_hat, float gamma, float beta, int relu) {
    return (relu && gamma * x_hat + beta <= 0.0f) ? 0.0f : dy;
}

// Per channel c, over its M values: g_beta[c] = sum(g), g_gamma[c] = sum(g * x_hat), g = grad_z(dy).
// dy has its own layout (dn, dc), x has (sn, sc).
extern "C" __global__ void bn_backward_sums(const float* dy, long long dn, long long dc, const float* x, long long sn,
                                            long long sc, const float* mean, const float* var, const float* gamma,
                                            const float* beta, float eps, int relu, float* g_beta, float* g_gamma,
                                            long long N, long long C, long long S) {
    long long M = N * S;
    for (long long c = blockIdx.x; c < C; c += gridDim.x) {
        float inv_std = rsqrtf(var[c] + eps);
        double sum = 0.0, sum_x_hat = 0.0;
        Walk w(threadIdx.x, blockDim.x, N, S);  // i = n * S + s: digits (0, n, s)
        for (long long i = threadIdx.x; i < M; i += UNROLL * blockDim.x) {
            float xs[UNROLL], dys[UNROLL];  // the loads first, as in bn_stats; past the end dy = 0 adds nothing
            for (int k = 0; k < UNROLL; k++, w.next()) {
                bool inside = i + k * blockDim.x < M;
                xs[k] = inside ? x[w.b * sn + c * sc + w.s] : 0.0f;
                dys[k] = inside ? dy[w.b * dn + c * dc + w.s] : 0.0f;
            }
            for (int k = 0; k < UNROLL; k++) {
                float x_hat = (xs[k] - mean[c]) * inv_std;
                float g = grad_z(dys[k], x_hat, gamma[c], beta[c], relu);
                sum += g;
                sum_x_hat += (double)g * x_hat;
            }
        }
        block_sum2(&sum, &sum_x_hat);
        if (threadIdx.x == 0) {
            g_beta[c] = (float)sum;
            g_gamma[c] = (float)sum_x_hat;
        }
    }
}

// dx = gamma * inv_std * (g - g_beta / M - x_hat * g_gamma / M), g = grad_z(dy); dx has x's layout.
extern "C" __global__ void bn_backward_dx(const float* dy, long long dn, long long dc, const float* x, long long sn,
                                          long long sc, const float* mean, const float* var, const float* gamma,
                                          const float* beta, float eps, int relu, const float* g_beta,
                                          const float* g_gamma, float* dx, long long N, long long C, long long S) {
    long long total = N * C * S, first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    long long step = (long long)gridDim.x * blockDim.x, n, c;
    float M = (float)(N * S);
    Walk w = storage_walk(first, step, sn, sc, N, C, S);
    for (long long i = first; i < total; i += step, w.next()) {
        sample_and_channel(w, sn, sc, &n, &c);
        float inv_std = rsqrtf(var[c] + eps);
        float x_hat = (x[i] - mean[c]) * inv_std;
        float g = grad_z(dy[n * dn + c * dc + w.s], x_hat, gamma[c], beta[c], relu);
        dx[i] = gamma[c] * inv_std * (g - g_beta[c] / M - x_hat * g_gamma[c] / M);
    }
}
