"""The prepared GPU check: ``python -m minidl.gpu_check`` on a machine with a GPU (see __main__.py).

    nvrtc     compile the hand-written kernels with NVRTC, no GPU needed (also used by the tests)
    twins     every CuPy backend-table entry against its NumPy twin, on the same random inputs
    pack      a dataset folder packed into one archive the device machine can carry, and unpacked
    report    the results table (markdown, ready for lessons/README.md)
    __main__  the command line: the GPU half of the tests, the twins, the bench, the lessons

How the GPU path is checked without a GPU, and how to run this: docs/notes/gpu.md.
"""
