// Index math of the mixed-batch gather (BGAN paper, eq. 2 and section 3.1), shared by the CPU
// kernel and the CUDA kernel.
//
// The op's output holds `halves` batches of B samples: half 0 is the mixed batch
// m_b = real_b if beta_b else fake_b; with complement, half 1 is the batch built from the
// samples half 0 left out (the paper's reuse of 1 - beta), so every sample is used once.
#pragma once

#include <cstdint>

#include "common/macros.h"

namespace batchgan {

// Whether output sample b of half `half` (0 = mixed, 1 = complement) is the real sample b.
BATCHGAN_HOST_DEVICE_INLINE bool mix_takes_real(bool beta, int64_t half) { return beta != (half == 1); }

// Backward: which half of the output gradient flows into input sample b of `real`
// (to_real) or of `fake` (!to_real); -1 when that sample was used by no output and its
// gradient is zero. Each input sample feeds at most one output sample, so the backward is
// a gather too, with no accumulation.
BATCHGAN_HOST_DEVICE_INLINE int64_t mix_grad_source_half(bool beta, bool to_real, bool complement) {
  const int64_t half = (beta == to_real) ? 0 : 1;
  return (half == 0 || complement) ? half : -1;
}

}  // namespace batchgan
