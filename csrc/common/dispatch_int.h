// Run-time integer -> compile-time template argument, for the CPU kernels that unroll a loop
// over a small dimension (pairwise_l1's kernel dims, the equivariant linear's few input
// features): dispatch_int<kFallback, kValues...>(value, f) calls f.template operator()<v>() for
// the v in kValues equal to value, else f.template operator()<kFallback>().
#pragma once

#include <cstdint>

namespace batchgan {

template <int kFallback, int... kValues, typename F>
void dispatch_int(int64_t value, const F& f) {
  const bool matched = ((value == kValues ? (f.template operator()<kValues>(), true) : false) || ...);
  if (!matched) f.template operator()<kFallback>();
}

}  // namespace batchgan
