// Parallel whole-sample copies for the CPU gather kernels (mix and its backward).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace batchgan {

// Bytes one parallel work item copies: large enough to amortise scheduling, small enough
// that a batch of few large samples still splits across cores.
constexpr int64_t kCopyChunkBytes = 64 * 1024;

// For s in [0, num_samples): copies sample_bytes from src_of(s) to dst_of(s), or zero-fills
// dst_of(s) when src_of(s) is nullptr. dst_of may be a base pointer (samples laid out
// contiguously) or a callable.
template <typename DstOf, typename SrcOf>
void copy_samples_cpu(DstOf dst_of, int64_t num_samples, int64_t sample_bytes, SrcOf src_of) {
  if (num_samples == 0 || sample_bytes == 0) return;
  auto dst_at = [&](int64_t s) -> char* {
    if constexpr (std::is_pointer_v<DstOf>) {
      return dst_of + s * sample_bytes;
    } else {
      return dst_of(s);
    }
  };
  const int64_t chunks_per_sample = (sample_bytes + kCopyChunkBytes - 1) / kCopyChunkBytes;
  const int64_t items = num_samples * chunks_per_sample;
  // Small samples: group items so that each task moves about one chunk.
  const int64_t grain = std::max<int64_t>(1, kCopyChunkBytes / std::min(sample_bytes, kCopyChunkBytes));
  at::parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t s = item / chunks_per_sample;
      const int64_t offset = (item - s * chunks_per_sample) * kCopyChunkBytes;
      const int64_t bytes = std::min(kCopyChunkBytes, sample_bytes - offset);
      const char* src = src_of(s);
      if (src == nullptr) {
        std::memset(dst_at(s) + offset, 0, bytes);
      } else {
        std::memcpy(dst_at(s) + offset, src + offset, bytes);
      }
    }
  });
}

}  // namespace batchgan
