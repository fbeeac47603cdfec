// ReLU's backward for float32 in one launch (see activation.py beside this file).
//
// x and gx share one dense memory layout (C-contiguous, or any permutation of it, such as the
// channel-major (C, N, H, W) memory of a conv2d output): one thread per element i of that memory.
// Element i is the element (a, b, c, d) of the (D0, D1, D2, D3) array that memory holds in order
// (x's axes permuted by decreasing stride, padded in front with 1s to four); gy, in any layout,
// is read through its element strides along those same axes (g0, g1, g2, g3): the same numbers
// as x's strides when gy is laid out like x, so then it reads gy[i].
// No #include: NVRTC compiles this with no CUDA headers.

extern "C" __global__ void relu_backward_f32(
    const float* gy, const float* x, float* gx, long long n, long long D1, long long D2, long long D3,
    long long g0, long long g1, long long g2, long long g3)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        long long rest = i;
        long long d = rest % D3; rest /= D3;
        long long c = rest % D2; rest /= D2;
        long long b = rest % D1;
        long long a = rest / D1;
        // gx = gy where x > 0, else 0 (a NaN x is not > 0: its gradient is 0, as in PyTorch)
        gx[i] = x[i] > 0.0f ? gy[a * g0 + b * g1 + c * g2 + d * g3] : 0.0f;
    }
}
