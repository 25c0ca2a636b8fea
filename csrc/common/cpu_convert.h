// Stores from the accumulation dtype for the CPU kernels' vectorised inner loops. For bfloat16
// it is c10's float -> bfloat16 conversion written branch-free: c10's tests for NaN with a
// branch, which keeps GCC from vectorising a loop that stores bfloat16 (measured ~4x slower than
// float32 on the equivariant epilogue); here the NaN case is a select, so the loop becomes vector
// shifts, adds and blends. The results are c10's bit for bit (round to nearest even, NaN ->
// 0x7FC0). Other dtypes use static_cast; loads need nothing (c10's bfloat16 -> float is a shift).
#pragma once

#include <c10/util/BFloat16.h>

#include <cstdint>
#include <cstring>

namespace batchgan {

template <typename scalar_t, typename acc_t>
inline scalar_t from_acc(acc_t v) {
  return static_cast<scalar_t>(v);
}

template <>
inline c10::BFloat16 from_acc<c10::BFloat16, float>(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  const uint32_t rounded = (bits + ((bits >> 16) & 1u) + 0x7FFFu) >> 16;
  const uint16_t out = v != v ? uint16_t{0x7FC0} : static_cast<uint16_t>(rounded);
  return c10::BFloat16(out, c10::BFloat16::from_bits());
}

}  // namespace batchgan
