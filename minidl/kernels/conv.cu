// im2col and col2im for float32, padding included: one launch each (see conv.py beside this file).
//
// Layouts (the same as the NumPy twins in conv.py):
//   x     (N, C, H, W) read through its element strides sn, sc, sh, sw: any dense layout works,
//         in particular the channel-major (C, N, H, W) memory that conv2d's outputs have;
//   cols  (C*KH*KW, N*OH*OW), C-contiguous: row (c, i, j), column (n, p, q);
//   image (C, N, H, W), C-contiguous (channel-major, like the columns).
// Window (p, q) with kernel offset (i, j) touches the padded pixel (p*stride + i*dilation,
// q*stride + j*dilation), which is the real pixel (that - pad_top, that - pad_left).

extern "C" __global__ void im2col_f32(
    const float* x, float* cols,
    int N, int C, int H, int W,
    long long sn, long long sc, long long sh, long long sw,
    int KH, int KW, int OH, int OW,
    int stride_h, int stride_w, int pad_top, int pad_left, int dilation_h, int dilation_w,
    float pad_value)
{
    // One thread per column entry e = row * (N*OH*OW) + column, row = (c*KH + i)*KW + j and
    // column = (n*OH + p)*OW + q. Only e needs 64 bits: the caller keeps N*OH*OW and C*KH*KW
    // below 2**31, so the rest of the index arithmetic is (fast) 32-bit.
    int windows = N * OH * OW;  // the length of one row of cols
    long long total = (long long)C * KH * KW * windows;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int column = (int)(e % windows), row = (int)(e / windows);
        int q = column % OW, p = column / OW % OH, n = column / (OW * OH);
        int j = row % KW, i = row / KW % KH, c = row / (KW * KH);
        int h = p * stride_h + i * dilation_h - pad_top;   // the real pixel (may lie in the border)
        int w = q * stride_w + j * dilation_w - pad_left;
        bool inside = h >= 0 && h < H && w >= 0 && w < W;
        cols[e] = inside ? x[n * sn + c * sc + h * sh + w * sw] : pad_value;
    }
}

extern "C" __global__ void col2im_f32(
    const float* cols, float* image,
    int N, int C, int H, int W,
    int KH, int KW, int OH, int OW,
    int stride_h, int stride_w, int pad_top, int pad_left, int dilation_h, int dilation_w)
{
    // A gather: one thread per image pixel e = ((c*N + n)*H + h)*W + w sums every column entry
    // that im2col copied from it. Kernel offset (i, j) reached it from window (p, q) when
    // p*stride_h + i*dilation_h == h + pad_top (and likewise for q): at most KH*KW entries,
    // added in a fixed order, so there are no atomics and the sum is deterministic.
    // (As in im2col_f32, N*OH*OW, C*N and H*W are below 2**31: only e and row offsets need 64 bits.)
    int windows = N * OH * OW;  // the length of one row of cols
    long long total = (long long)C * N * H * W;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int pixel = (int)(e % (H * W)), plane = (int)(e / (H * W));  // plane = c*N + n
        int w = pixel % W, h = pixel / W;
        int n = plane % N, c = plane / N;
        float sum = 0.0f;
        for (int i = 0; i < KH; ++i) {
            int top = h + pad_top - i * dilation_h;  // = p * stride_h for the window p, if any
            if (top < 0 || top % stride_h != 0 || top / stride_h >= OH) continue;
            int p = top / stride_h;
            for (int j = 0; j < KW; ++j) {
                int left = w + pad_left - j * dilation_w;  // = q * stride_w
                if (left < 0 || left % stride_w != 0 || left / stride_w >= OW) continue;
                int q = left / stride_w;
                long long row = ((long long)c * KH + i) * KW + j;
                sum += cols[row * windows + (n * OH + p) * OW + q];
            }
        }
        image[e] = sum;
    }
}
