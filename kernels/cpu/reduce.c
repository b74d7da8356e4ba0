/* reduce.c — argmax and top-k over a float vector (the sampler's hot loops). NaN ranks below every
 * number; ties go to the lower index. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref.h"

/* is (a, ia) ranked before (b, ib)? */
static int rank_before(float a, int64_t ia, float b, int64_t ib) {
    if (isnan(a)) return isnan(b) && ia < ib;
    if (isnan(b)) return 1;
    return a > b || (a == b && ia < ib);
}

int64_t mp_ref_argmax(const float *x, int64_t n) {
    if (n <= 0) return -1;
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (rank_before(x[i], i, x[best], best)) best = i;
    return best;
}

void mp_ref_topk(const float *x, int64_t n, int k, int32_t *idx, float *val) {
    if (k > n) k = (int)n;
    if (k <= 0) return;
    int have = 0;
    for (int64_t i = 0; i < n; i++) {
        if (have == k && !rank_before(x[i], i, val[k - 1], idx[k - 1])) continue;
        int p = have < k ? have++ : k - 1; /* insertion into the sorted list */
        while (p > 0 && rank_before(x[i], i, val[p - 1], idx[p - 1])) {
            val[p] = val[p - 1];
            idx[p] = idx[p - 1];
            p--;
        }
        val[p] = x[i];
        idx[p] = (int32_t)i;
    }
}

int64_t mp_argmax(mp_exec *ex, const float *x, int64_t n) {
#ifdef MP_HAVE_CUDA
    if (ex && ex->backend == MP_BACKEND_CUDA) return mp_cuda_argmax(ex, x, n);
#endif
    (void)ex;
    return mp_ref_argmax(x, n);
}

void mp_topk(mp_exec *ex, const float *x, int64_t n, int k, int32_t *idx, float *val) {
    MP_CUDA_DISPATCH(ex, mp_cuda_topk(ex, x, n, k, idx, val));
    mp_ref_topk(x, n, k, idx, val);
}
