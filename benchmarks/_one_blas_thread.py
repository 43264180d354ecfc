"""One BLAS thread for a benchmark, unless the environment says otherwise.

Import it before numpy (it sets the variables BLAS reads when numpy loads it). The
matrices here are small (a 64 x 64 matrix-vector product in the RNN, 100 x 100 products
in the Jacobian grid): waking a thread pool for each cost up to 10x the product itself
on a busy 2-core machine, for fad and the hand-written variants alike, and made every
timing vary by +-50%. Single-threaded, rounds agree to a few percent.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
