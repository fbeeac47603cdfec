// ReLU's backward for float32 in one launch (see activation.py beside this file).
//
// gy, x and gx share one dense memory layout (C-contiguous, or any permutation of it, such as
// the channel-major (C, N, H, W) memory of a conv2d output): element i of gx's memory is the
// gradient at element i of x's and gy's memory, so one flat walk over the n elements does it.
// No #include: NVRTC compiles this with no CUDA headers.

extern "C" __global__ void relu_backward_f32(const float* gy, const float* x, float* gx, long long n)
{
    // gx = gy where x > 0, else 0 (a NaN x is not > 0: its gradient is 0, as in PyTorch)
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        gx[i] = x[i] > 0.0f ? gy[i] : 0.0f;
}
