// Grid/block configuration of every CUDA kernel, computed by host functions that the real
// .cu launchers and the CPU emulator both call, so the emulated launch is the real launch.
#pragma once

#include <algorithm>
#include <cstdint>

#include <c10/util/Exception.h>

namespace batchgan {

struct LaunchConfig {
  unsigned grid[3] = {1, 1, 1};
  unsigned block[3] = {1, 1, 1};
};

// Threads per block of the elementwise kernels. A multiple of the warp size (the warp
// reductions assume full warps).
constexpr int kElementwiseThreads = 256;
// Threads per block of the kernels that reduce one item (a set, a stddev group) per block.
constexpr int kReductionThreads = 256;
constexpr int kWarpSize = 32;
// A grid-stride loop covers any size; more blocks than this buys nothing on current GPUs
// and would only make emulated launches slower.
constexpr int64_t kMaxElementwiseBlocks = 4096;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Calls f.template operator()<index_t>() with the index type of an elementwise kernel whose
// largest index is below `count`: uint32_t while every index (and the grid-stride loop's i +
// stride) stays below 2^32, so the kernel's divisions by launch-constant sizes are ATen's
// multiply-and-shift IntDivider; uint64_t beyond (plain division).
template <typename F>
void dispatch_index_type(int64_t count, const F& f) {
  if (count <= INT32_MAX) {
    f.template operator()<uint32_t>();
  } else {
    f.template operator()<uint64_t>();
  }
}

// One thread per element, grid-stride loop beyond kMaxElementwiseBlocks blocks.
// numel must be positive: launchers return early on empty tensors (CUDA rejects empty grids).
inline LaunchConfig elementwise_launch_config(int64_t numel) {
  TORCH_CHECK(numel > 0, "batchgan internal error: elementwise launch of an empty range");
  LaunchConfig cfg;
  cfg.block[0] = kElementwiseThreads;
  cfg.grid[0] = static_cast<unsigned>(std::min(ceil_div(numel, kElementwiseThreads), kMaxElementwiseBlocks));
  return cfg;
}

// One block per item (a set, a stddev group); the block's threads stride over its samples.
inline LaunchConfig block_per_item_launch_config(int64_t num_items) {
  TORCH_CHECK(num_items > 0 && num_items <= 2147483647, "batchgan internal error: bad block count ", num_items);
  LaunchConfig cfg;
  cfg.block[0] = kReductionThreads;
  cfg.grid[0] = static_cast<unsigned>(num_items);
  return cfg;
}

// Pairwise kernels (minibatch discrimination): a block owns kPairwiseTileRows rows i of one
// (kernel b, set g), one thread each, and walks a slice of the set's samples j in tiles of
// kPairwiseTileJ (forward) or kPairwiseGradTileJ (backward) samples, staged in shared memory
// kPairwiseTileC dims at a time. A thread keeps a tile's distances, and in the backward
// kPairwiseTileC gradient sums, in registers: the tile widths set the register count, hence
// the occupancy (README, "Kernel resources").
constexpr int kPairwiseTileRows = 128;
constexpr int kPairwiseTileJ = 32;
constexpr int kPairwiseGradTileJ = 8;
constexpr int kPairwiseTileC = 16;
// Padding of a staged chunk's rows ([c][j]): 4 values keep every row 16-byte aligned (vector
// loads) and spread the staging stores, which run along c, over the banks.
constexpr int kPairwiseTilePad = 4;
// One thread per row gives a set of N samples only N / 32 warps per kernel b: at N=256, B=100
// that is 800 warps, 9% of an H100. A grid of fewer than kPairwiseTargetBlocks blocks therefore
// splits each row's walk over j into slices of at least kPairwiseMinSliceSamples samples, one
// block each, whose partial sums are added in slice order afterwards.
constexpr int64_t kPairwiseTargetBlocks = 1024;
constexpr int64_t kPairwiseMinSliceSamples = 64;

struct PairwiseLaunch {
  LaunchConfig cfg;       // grid (row tiles x slices, B, G)
  int64_t slices = 1;     // j slices per row
  int64_t slice_len = 0;  // samples per slice, a multiple of kPairwiseTileJ
};

inline PairwiseLaunch pairwise_tile_launch_config(int64_t set_size, int64_t kernels, int64_t dims, int64_t num_sets) {
  TORCH_CHECK(set_size > 0, "batchgan internal error: pairwise launch over an empty set");
  // The kernels index samples and dims of a set with 32-bit ints (fewer registers).
  TORCH_CHECK(set_size <= 2147483647 - kPairwiseTileRows,
              "num_sets: the CUDA kernel handles sets of at most 2^31 - 129 samples, got ", set_size);
  TORCH_CHECK(dims >= 0 && dims <= 2147483647 - kPairwiseTileC,
              "M: the CUDA kernel handles at most 2^31 - 17 kernel dims (size(2)), got ", dims);
  TORCH_CHECK(kernels >= 1 && kernels <= 65535, "M: the CUDA kernel handles at most 65535 kernels (size(1)), got ",
              kernels);
  TORCH_CHECK(num_sets >= 1 && num_sets <= 65535, "num_sets: the CUDA kernel handles at most 65535 sets, got ",
              num_sets);
  const int64_t row_tiles = ceil_div(set_size, kPairwiseTileRows);
  const int64_t blocks = row_tiles * kernels * num_sets;
  int64_t slices = std::min(ceil_div(kPairwiseTargetBlocks, blocks), ceil_div(set_size, kPairwiseMinSliceSamples));
  slices = std::max<int64_t>(slices, 1);
  PairwiseLaunch launch;
  launch.slice_len = ceil_div(ceil_div(set_size, slices), kPairwiseTileJ) * kPairwiseTileJ;
  launch.slices = ceil_div(set_size, launch.slice_len);
  launch.cfg.block[0] = kPairwiseTileRows;
  launch.cfg.grid[0] = static_cast<unsigned>(row_tiles * launch.slices);
  launch.cfg.grid[1] = static_cast<unsigned>(kernels);
  launch.cfg.grid[2] = static_cast<unsigned>(num_sets);
  return launch;
}

}  // namespace batchgan
