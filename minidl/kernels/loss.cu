// Cross-entropy of float32 logits z (M, C) against class indices, one launch each way
// (the math and the NumPy twins are in loss.py beside this file).
//
// Row n's target y_n (int64): it counts unless y_n == ignore_index; its class must be 0..C-1
// (a class outside gets a NaN target weight, so a NaN loss and gradient: checking on the GPU
// would make every step wait). With w the class weights (all 1 when has_weight is 0) and eps
// the label smoothing:
//     target_weight_n = w[y_n] (0 for an ignored row),  hot_n = (1 - eps) target_weight_n,
//     spread_n = eps / C (0 for an ignored row),  q_nc = hot_n [c == y_n] + spread_n w_c,
//     s_n = sum_c q_nc = hot_n + spread_n sum_c w_c,   lse_n = log sum_c exp(z_nc).
// No #include: NVRTC compiles this with no CUDA headers (expf, logf are built in).

#define MAX_ROW_BLOCK 256  // threads per row in the forward: a power of 2, at most this (loss.ROW_BLOCK)

// The sum (or, with take_max, the max; a NaN wins) of v over the block's threads: a tree in shared
// memory. Every thread of the block must call it; every thread gets the result.
__device__ float block_reduce(float v, float* shared, bool take_max)
{
    shared[threadIdx.x] = v;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            float a = shared[threadIdx.x], b = shared[threadIdx.x + half];
            shared[threadIdx.x] = take_max ? (b > a || b != b ? b : a) : a + b;
        }
        __syncthreads();
    }
    float result = shared[0];
    __syncthreads();  // (shared is reused by the next call)
    return result;
}

// Forward: one block per row n (grid-stride over rows), its threads walk the row's classes:
//     m = max_c z_nc,  e = sum_c exp(z_nc - m)  (so lse_n = m + log e: no overflow),
//     loss_n = hot_n (log e - (z_ny - m)) + spread_n (sum_c w_c log e - sum_c w_c (z_nc - m)),
// and writes what backward and the mean need: lse_n, target_weight_n, s_n.
extern "C" __global__ void cross_entropy_forward_f32(
    const float* z, const long long* target, const float* weight, int has_weight, long long ignore_index,
    float smoothing, long long M, long long C, float* loss, float* lse, float* target_weight, float* target_sum)
{
    __shared__ float shared[MAX_ROW_BLOCK];
    const float nan = __int_as_float(0x7fc00000);
    for (long long n = blockIdx.x; n < M; n += gridDim.x) {
        const float* row = z + n * C;
        float m = -__int_as_float(0x7f800000);  // -inf
        for (long long c = threadIdx.x; c < C; c += blockDim.x)
            m = row[c] > m || row[c] != row[c] ? row[c] : m;
        m = block_reduce(m, shared, true);
        float e = 0.0f, wz = 0.0f, wsum = 0.0f;  // sum exp(z - m), sum w (z - m), sum w
        for (long long c = threadIdx.x; c < C; c += blockDim.x) {
            float w = has_weight ? weight[c] : 1.0f, d = row[c] - m;
            e += expf(d), wz += w * d, wsum += w;
        }
        e = block_reduce(e, shared, false);
        wz = block_reduce(wz, shared, false);
        wsum = block_reduce(wsum, shared, false);
        if (threadIdx.x == 0) {
            long long y = target[n];
            bool counts = y != ignore_index;
            long long wanted = counts ? y : 0;
            bool in_range = wanted >= 0 && wanted < C;
            long long k = in_range ? wanted : 0;  // a class to read (the loss is NaN anyway)
            float tw = !in_range ? nan : counts ? (has_weight ? weight[k] : 1.0f) : 0.0f;
            float hot = tw * (1.0f - smoothing), spread = counts ? smoothing / C : 0.0f;
            float log_e = logf(e);
            loss[n] = hot * (log_e - (row[k] - m)) + spread * (wsum * log_e - wz);
            lse[n] = m + log_e;
            target_weight[n] = tw;
            target_sum[n] = hot + spread * wsum;
        }
    }
}

// Backward: one thread per element (n, c) of z:  gz_nc = g_n (p_nc s_n - q_nc),  p_nc = exp(z_nc - lse_n).
// g is read through its stride (0 when it is one value broadcast over the rows, as a mean's gradient is).
extern "C" __global__ void cross_entropy_backward_f32(
    const float* z, const float* lse, const float* g, long long g_stride, const long long* target,
    const float* target_weight, const float* target_sum, const float* weight, int has_weight,
    long long ignore_index, float smoothing, long long M, long long C, float* gz)
{
    long long total = M * C;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        long long n = i / C, c = i % C, y = target[n];
        bool counts = y != ignore_index;
        float q = counts ? smoothing / C * (has_weight ? weight[c] : 1.0f) : 0.0f;
        if (counts && y == c) q += target_weight[n] * (1.0f - smoothing);
        gz[i] = g[n * g_stride] * (expf(z[i] - lse[n]) * target_sum[n] - q);
    }
}
