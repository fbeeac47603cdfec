// Multi-tensor optimizer updates: one launch updates every float32 parameter of a group.
//
// The parameters (and their gradients and states) are separate arrays scattered in device
// memory, so each kernel gets a table of their addresses and numbers all their items together:
//
//   addresses[r * n_tensors + t]   the address of tensor t of row r
//                                  (rows: params, grads, then the optimizer's states; 0 = unused row)
//   starts[t] .. starts[t + 1] - 1 the items of tensor t, in one numbering 0 .. n - 1 of all items
//
// Work item i (one float of one parameter) finds its tensor t by binary search in starts and its
// offset i - starts[t] inside it. Every item reads and writes only its own offset of its own
// tensors, so the items are independent (no atomics) and a grid-stride loop covers them all.
//
// The math, step by step, is the NumPy twin's in optim.py (PyTorch's equations).

// The tensor that owns item i: the largest t with starts[t] <= i (empty tensors are skipped over).
__device__ int tensor_of(const long long* starts, int n_tensors, long long i)
{
    int lo = 0, hi = n_tensors - 1;  // the answer lies in [lo, hi]
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (starts[mid] <= i) lo = mid; else hi = mid - 1;
    }
    return lo;
}

// Row r's tensor t, as a float pointer.
__device__ float* tensor_at(const long long* addresses, int n_tensors, int r, int t)
{
    return reinterpret_cast<float*>(addresses[(long long)r * n_tensors + t]);
}

// SGD: rows params, grads, momentum_buffers (the last unused when momentum == 0).
//   g = -g  (maximize)
//   g = g + weight_decay * p
//   b = g  (first_step)   or   b = momentum * b + (1 - dampening) * g
//   g = g + momentum * b  (nesterov)   or   g = b
//   p = p - lr * g
extern "C" __global__ void sgd_multi_tensor(const long long* addresses, const long long* starts, int n_tensors,
                                            long long n, float lr, float momentum, float dampening,
                                            float weight_decay, int nesterov, int maximize, int first_step)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        int t = tensor_of(starts, n_tensors, i);
        long long k = i - starts[t];  // the offset inside tensor t
        float* p = tensor_at(addresses, n_tensors, 0, t);
        const float* grad = tensor_at(addresses, n_tensors, 1, t);
        float w = p[k];
        float g = maximize ? -grad[k] : grad[k];
        if (weight_decay != 0.0f) g = g + w * weight_decay;
        if (momentum != 0.0f) {
            float* buffer = tensor_at(addresses, n_tensors, 2, t);
            float b = first_step ? g : buffer[k] * momentum + g * (1.0f - dampening);
            buffer[k] = b;
            g = nesterov ? g + b * momentum : b;
        }
        p[k] = w - g * lr;
    }
}

// Adam / AdamW: rows params, grads, exp_avgs (m), exp_avg_sqs (v), max_exp_avg_sqs (the last unused
// without amsgrad). The step's scalars come from the host, computed there from the step count t:
//   step_size = lr / (1 - beta1**t),  bias_correction2_sqrt = sqrt(1 - beta2**t),  decay = 1 - lr * weight_decay
//   g = -g  (maximize)
//   p = decay * p  (decoupled: AdamW)   or   g = g + weight_decay * p  (Adam)
//   m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g * g
//   v_max = max(v_max, v), and v_max replaces v below  (amsgrad)
//   p = p - step_size * m / (sqrt(v) / bias_correction2_sqrt + eps)
extern "C" __global__ void adam_multi_tensor(const long long* addresses, const long long* starts, int n_tensors,
                                             long long n, float beta1, float beta2, float eps, float weight_decay,
                                             float decay, float step_size, float bias_correction2_sqrt,
                                             int decoupled, int amsgrad, int maximize)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        int t = tensor_of(starts, n_tensors, i);
        long long k = i - starts[t];  // the offset inside tensor t
        float* p = tensor_at(addresses, n_tensors, 0, t);
        const float* grad = tensor_at(addresses, n_tensors, 1, t);
        float* exp_avg = tensor_at(addresses, n_tensors, 2, t);
        float* exp_avg_sq = tensor_at(addresses, n_tensors, 3, t);
        float w = p[k];
        float g = maximize ? -grad[k] : grad[k];
        if (weight_decay != 0.0f) {
            if (decoupled) w = w * decay;
            else g = g + w * weight_decay;
        }
        float m = exp_avg[k] * beta1 + g * (1.0f - beta1);
        float v = exp_avg_sq[k] * beta2 + (g * g) * (1.0f - beta2);
        exp_avg[k] = m;
        exp_avg_sq[k] = v;
        if (amsgrad) {
            float* max_exp_avg_sq = tensor_at(addresses, n_tensors, 4, t);
            v = fmaxf(max_exp_avg_sq[k], v);
            max_exp_avg_sq[k] = v;
        }
        float denom = sqrtf(v) / bias_correction2_sqrt + eps;
        p[k] = w - (m / denom) * step_size;
    }
}
