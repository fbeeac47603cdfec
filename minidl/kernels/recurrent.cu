// The pointwise half of one time step of a recurrent cell (LSTM, GRU, Elman RNN), forward and
// backward, one launch each. The matmuls (x W_ih^T for all steps, h W_hh^T per step, the weight
// gradients) are cuBLAS calls made by the caller; the math and the NumPy twins are in recurrent.py.
//
// Layouts (all C-contiguous float32, B = batch, H = hidden, one row per sequence):
//   gx, gh        (B, G*H)  x_t W_ih^T + b_ih and h W_hh^T (no bias), G gates stacked by blocks of H
//                           columns: gate k of element (b, j) is at  b*G*H + k*H + j
//   b_hh          (G*H,)    added here (the GRU keeps b_hn inside r * (...), so it cannot go in gx)
//   h, c, ...     (B, H)    element (b, j) at b*H + j
//   saved         (B, S*H)  what backward needs, S blocks of H columns, laid out like the gates
//   valid         (B,)      false once sequence b has ended: its state is carried over unchanged,
//                           its output is 0 and no gradient enters its gates
// Every kernel runs one thread per (b, j), i = b*H + j = 0 .. B*H-1, with a grid-stride loop.
//
// Backward carries two gradients per state from step t to step t-1:
//   d_hidden (B, H)  the gradient reaching h_t through the next step's gh (= dgh_{t+1} W_hh, a matmul)
//   d_h, d_c (B, H)  the gradient reaching h_t, c_t directly (read, then overwritten with the one for
//                    h_{t-1}, c_{t-1}); d_output (B, H) is the gradient of output_t.
//
// No #include: NVRTC compiles this with no CUDA headers; expf and tanhf are built in.

__device__ __forceinline__ float sigmoidf(float a) { return 1.0f / (1.0f + expf(-a)); }

// for (every item i of n, this thread's share): the grid-stride loop of every kernel here
#define GRID_STRIDE(i, n)                                                          \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
         i += (long long)gridDim.x * blockDim.x)

// LSTM (gates i, f, g, o):  c' = f c + i g,  h' = o tanh(c');  saved = [i, f, g, o, tanh(c')].
extern "C" __global__ void lstm_forward(const float* gx, const float* gh, const float* b_hh, const float* h,
                                        const float* c, const bool* valid, float* h_new, float* c_new,
                                        float* output, float* saved, long long batch, int hidden) {
    long long H = hidden;
    GRID_STRIDE(i, batch * H) {
        long long b = i / H, j = i - b * H;
        const float* ax = gx + b * 4 * H;
        const float* ah = gh + b * 4 * H;
        float in = sigmoidf(ax[j] + ah[j] + b_hh[j]);
        float forget = sigmoidf(ax[H + j] + ah[H + j] + b_hh[H + j]);
        float cand = tanhf(ax[2 * H + j] + ah[2 * H + j] + b_hh[2 * H + j]);
        float out = sigmoidf(ax[3 * H + j] + ah[3 * H + j] + b_hh[3 * H + j]);
        float cell = forget * c[i] + in * cand;
        float tanh_c = tanhf(cell);
        float* s = saved + b * 5 * H;
        s[j] = in;
        s[H + j] = forget;
        s[2 * H + j] = cand;
        s[3 * H + j] = out;
        s[4 * H + j] = tanh_c;
        bool v = valid[b];
        h_new[i] = v ? out * tanh_c : h[i];
        c_new[i] = v ? cell : c[i];
        output[i] = v ? out * tanh_c : 0.0f;
    }
}

// dh = d_hidden + d_h + d_output,  dc = d_c + dh o (1 - tanh(c')^2);
// d_gates = [dc g i(1-i), dc c f(1-f), dc i (1-g^2), dh tanh(c') o(1-o)];  d_c <- dc f,  d_h <- 0.
// An ended sequence: d_gates = 0, d_h <- d_hidden + d_h, d_c unchanged.
extern "C" __global__ void lstm_backward(const float* d_output, const float* d_hidden, float* d_h, float* d_c,
                                         const float* c, const float* saved, const bool* valid, float* d_gates,
                                         long long batch, int hidden) {
    long long H = hidden;
    GRID_STRIDE(i, batch * H) {
        long long b = i / H, j = i - b * H;
        float* dg = d_gates + b * 4 * H;
        if (!valid[b]) {
            dg[j] = dg[H + j] = dg[2 * H + j] = dg[3 * H + j] = 0.0f;
            d_h[i] += d_hidden[i];
            continue;
        }
        const float* s = saved + b * 5 * H;
        float in = s[j], forget = s[H + j], cand = s[2 * H + j], out = s[3 * H + j], tanh_c = s[4 * H + j];
        float dh = d_hidden[i] + d_h[i] + d_output[i];
        float dc = d_c[i] + dh * out * (1.0f - tanh_c * tanh_c);
        dg[j] = dc * cand * in * (1.0f - in);
        dg[H + j] = dc * c[i] * forget * (1.0f - forget);
        dg[2 * H + j] = dc * in * (1.0f - cand * cand);
        dg[3 * H + j] = dh * tanh_c * out * (1.0f - out);
        d_c[i] = dc * forget;
        d_h[i] = 0.0f;
    }
}

// GRU (gates r, z, n):  n = tanh(gx_n + r (gh_n + b_hn)),  h' = n + z (h - n);  saved = [r, z, n, gh_n + b_hn].
extern "C" __global__ void gru_forward(const float* gx, const float* gh, const float* b_hh, const float* h,
                                       const bool* valid, float* h_new, float* output, float* saved,
                                       long long batch, int hidden) {
    long long H = hidden;
    GRID_STRIDE(i, batch * H) {
        long long b = i / H, j = i - b * H;
        const float* ax = gx + b * 3 * H;
        const float* ah = gh + b * 3 * H;
        float r = sigmoidf(ax[j] + ah[j] + b_hh[j]);
        float z = sigmoidf(ax[H + j] + ah[H + j] + b_hh[H + j]);
        float gh_n = ah[2 * H + j] + b_hh[2 * H + j];
        float n = tanhf(ax[2 * H + j] + r * gh_n);
        float* s = saved + b * 4 * H;
        s[j] = r;
        s[H + j] = z;
        s[2 * H + j] = n;
        s[3 * H + j] = gh_n;
        bool v = valid[b];
        float hid = n + z * (h[i] - n);
        h_new[i] = v ? hid : h[i];
        output[i] = v ? hid : 0.0f;
    }
}

// dh = d_hidden + d_h + d_output;  da_n = dh (1-z)(1-n^2),  da_r = da_n gh_n r(1-r),  da_z = dh (h-n) z(1-z);
// dgx = [da_r, da_z, da_n],  dgh = [da_r, da_z, da_n r],  d_h <- dh z.  An ended sequence: as the LSTM.
extern "C" __global__ void gru_backward(const float* d_output, const float* d_hidden, float* d_h, const float* h,
                                        const float* saved, const bool* valid, float* dgx, float* dgh,
                                        long long batch, int hidden) {
    long long H = hidden;
    GRID_STRIDE(i, batch * H) {
        long long b = i / H, j = i - b * H;
        float* gx = dgx + b * 3 * H;
        float* gh = dgh + b * 3 * H;
        if (!valid[b]) {
            gx[j] = gx[H + j] = gx[2 * H + j] = 0.0f;
            gh[j] = gh[H + j] = gh[2 * H + j] = 0.0f;
            d_h[i] += d_hidden[i];
            continue;
        }
        const float* s = saved + b * 4 * H;
        float r = s[j], z = s[H + j], n = s[2 * H + j], gh_n = s[3 * H + j];
        float dh = d_hidden[i] + d_h[i] + d_output[i];
        float da_n = dh * (1.0f - z) * (1.0f - n * n);
        float da_r = da_n * gh_n * r * (1.0f - r);
        float da_z = dh * (h[i] - n) * z * (1.0f - z);
        gx[j] = gh[j] = da_r;
        gx[H + j] = gh[H + j] = da_z;
        gx[2 * H + j] = da_n;
        gh[2 * H + j] = da_n * r;
        d_h[i] = dh * z;
    }
}

// Elman RNN:  h' = tanh(a) or max(a, 0), a = gx + gh + b_hh;  saved = [h'].
extern "C" __global__ void rnn_forward(const float* gx, const float* gh, const float* b_hh, const float* h,
                                       const bool* valid, float* h_new, float* output, float* saved,
                                       long long batch, int hidden, int relu) {
    long long H = hidden;
    GRID_STRIDE(i, batch * H) {
        long long j = i % H;
        float a = gx[i] + gh[i] + b_hh[j];
        float hid = relu ? fmaxf(a, 0.0f) : tanhf(a);
        bool v = valid[i / H];
        saved[i] = hid;
        h_new[i] = v ? hid : h[i];
        output[i] = v ? hid : 0.0f;
    }
}

// dh = d_hidden + d_h + d_output;  da = dh (1 - h'^2) (tanh) or dh [h' > 0] (relu);  d_h <- 0.
extern "C" __global__ void rnn_backward(const float* d_output, const float* d_hidden, float* d_h, const float* saved,
                                        const bool* valid, float* d_gates, long long batch, int hidden, int relu) {
    long long H = hidden;
    GRID_STRIDE(i, batch * H) {
        if (!valid[i / H]) {
            d_gates[i] = 0.0f;
            d_h[i] += d_hidden[i];
            continue;
        }
        float hid = saved[i];
        float dh = d_hidden[i] + d_h[i] + d_output[i];
        d_gates[i] = relu ? (hid > 0.0f ? dh : 0.0f) : dh * (1.0f - hid * hid);
        d_h[i] = 0.0f;
    }
}
