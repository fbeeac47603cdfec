// Max pooling for float32: forward and backward, one launch each (see pool.py beside this file).
//
// Layouts (the same as the NumPy twins in pool.py):
//   x, gy    (N, C, H, W) and (N, C, OH, OW), read through their element strides sn, sc, sh, sw:
//            any dense layout works, in particular the channel-major memory of conv2d's outputs;
//   y, gx    (N, C, OH, OW) and (N, C, H, W), C-contiguous;
//   indices  (N, C, OH, OW) int64, C-contiguous: the winner of window (p, q) as the flat index
//            h*W + w into its (H, W) plane (PyTorch's return_indices), -1 for a window with no
//            real pixel.
// Window (p, q) at kernel offset (i, j) reads the pixel (p*stride_h + i*dilation_h - pad_h,
// q*stride_w + j*dilation_w - pad_w) when it lies inside the image; padding is never read.

extern "C" __global__ void max_pool2d_forward_f32(
    const float* x, float* y, long long* indices,
    int N, int C, int H, int W, int OH, int OW,
    long long sn, long long sc, long long sh, long long sw,
    int KH, int KW, int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w)
{
    // One thread per output e = ((n*C + c)*OH + p)*OW + q scans its window in kernel order.
    // The winner is the first real pixel, replaced by a larger one or by a first NaN (NaN is
    // the max, as in PyTorch); ties keep the earlier pixel: PyTorch's first maximum.
    long long total = (long long)N * C * OH * OW;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        long long rest = e;
        int q = rest % OW; rest /= OW;
        int p = rest % OH; rest /= OH;
        int c = rest % C;
        int n = rest / C;
        const float* plane = x + n * sn + c * sc;
        float best = -__int_as_float(0x7f800000);  // -inf
        long long winner = -1;
        for (int i = 0; i < KH; ++i) {
            int h = p * stride_h + i * dilation_h - pad_h;
            if (h < 0 || h >= H) continue;  // padding
            for (int j = 0; j < KW; ++j) {
                int w = q * stride_w + j * dilation_w - pad_w;
                if (w < 0 || w >= W) continue;
                float v = plane[h * sh + w * sw];
                bool v_nan = v != v, best_nan = best != best;
                if (winner < 0 || v > best || (v_nan && !best_nan)) {
                    best = v;
                    winner = (long long)h * W + w;
                }
            }
        }
        y[e] = best;
        indices[e] = winner;
    }
}

extern "C" __global__ void max_pool2d_backward_f32(
    const float* gy, const long long* indices, float* gx,
    int N, int C, int H, int W, int OH, int OW,
    long long sn, long long sc, long long sh, long long sw,
    int KH, int KW, int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w)
{
    // A gather: one thread per input pixel e = ((n*C + c)*H + h)*W + w adds the gradient of
    // every window whose winner it is. Kernel offset (i, j) reached it from window (p, q) when
    // p*stride_h + i*dilation_h == h + pad_h (and likewise for q): at most KH*KW windows, added
    // in a fixed order, so there are no atomics and the sum is deterministic.
    long long total = (long long)N * C * H * W;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        long long rest = e;
        int w = rest % W; rest /= W;
        int h = rest % H; rest /= H;
        int c = rest % C;
        int n = rest / C;
        long long me = (long long)h * W + w;             // this pixel's flat index in its plane
        long long windows = ((long long)n * C + c) * OH;  // row (n, c, 0) of indices, in rows of OW
        const float* g = gy + n * sn + c * sc;
        float sum = 0.0f;
        for (int i = 0; i < KH; ++i) {
            int top = h + pad_h - i * dilation_h;  // = p * stride_h for the window p, if any
            if (top < 0 || top % stride_h != 0 || top / stride_h >= OH) continue;
            int p = top / stride_h;
            for (int j = 0; j < KW; ++j) {
                int left = w + pad_w - j * dilation_w;
                if (left < 0 || left % stride_w != 0 || left / stride_w >= OW) continue;
                int q = left / stride_w;
                if (indices[(windows + p) * OW + q] == me) sum += g[p * sh + q * sw];
            }
        }
        gx[e] = sum;
    }
}
