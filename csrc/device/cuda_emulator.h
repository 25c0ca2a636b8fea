// A CPU emulator of the CUDA execution model, header-only, for running batchgan's device code
// in tests on machines without a GPU.
//
// What it emulates (the portable subset listed in device/device_api.h):
//  - a launch runs the grid's blocks one after another; the threads of a block are real,
//    concurrent std::threads, so a missing __syncthreads() can show up as a data race;
//  - threadIdx/blockIdx/blockDim/gridDim are thread_local;
//  - `__shared__` arrays are function-level statics: one instance, shared by the block's
//    threads (blocks never overlap, so this is per-block memory);
//  - __syncthreads() is a barrier of the block, warp_reduce_sum a barrier of the warp;
//  - atomicAdd is an atomic read-modify-write on host memory.
// Barrier misuse is an error, never a silent pass: threads of one block waiting at two
// different __syncthreads() call sites, a barrier some threads of the block return without
// reaching, and a barrier that does not complete within the timeout
// (BATCHGAN_EMULATOR_TIMEOUT_S, default 30 s) all make the launch throw.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "common/launch_config.h"

// ---- CUDA spellings, mapped onto the host ---------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

namespace batchgan {
namespace emu {

// Thrown inside an emulated thread to unwind its kernel once the launch has failed.
struct KernelAborted {};

struct BarrierSite {
  const char* file = nullptr;
  int line = 0;
  bool operator==(const BarrierSite& o) const {
    return line == o.line && (file == o.file || (file && o.file && std::strcmp(file, o.file) == 0));
  }
  std::string str() const { return std::string(file ? file : "?") + ":" + std::to_string(line); }
};

// A barrier over `expected` threads (a block, or one warp of it). Guarded by the block mutex.
struct Barrier {
  int expected = 0;
  int arrived = 0;
  uint64_t generation = 0;
  BarrierSite site;
};

class BlockState {
 public:
  explicit BlockState(int num_threads) : num_threads_(num_threads) {
    block_barrier_.expected = num_threads;
    const int num_warps = (num_threads + kWarpSize - 1) / kWarpSize;
    warp_barriers_.resize(num_warps);
    warp_exited_.assign(num_warps, 0);
    for (int w = 0; w < num_warps; ++w) {
      warp_barriers_[w].expected = std::min(kWarpSize, num_threads - w * kWarpSize);
    }
    warp_slots_.assign(static_cast<size_t>(num_warps) * kWarpSize * kSlotBytes, 0);
    const char* env = std::getenv("BATCHGAN_EMULATOR_TIMEOUT_S");
    timeout_s_ = env ? std::atof(env) : 30.0;
    if (!(timeout_s_ > 0)) timeout_s_ = 30.0;
  }

  // __syncthreads() of thread `tid`.
  void sync_block(int tid, BarrierSite site) {
    (void)tid;
    wait_at(block_barrier_, exited_, site, "__syncthreads()");
  }

  // A barrier of the warp of thread `tid` (used by the warp reductions).
  void sync_warp(int tid, BarrierSite site) {
    const int w = tid / kWarpSize;
    wait_at(warp_barriers_[w], warp_exited_[w], site, "warp collective");
  }

  // Thread `tid` returned from the kernel for the current block; waits for the block's other
  // threads, so that the next block starts with all threads and fresh barrier state.
  void finish_block(int tid) {
    std::unique_lock<std::mutex> lock(mutex_);
    const int w = tid / kWarpSize;
    ++exited_;
    ++warp_exited_[w];
    if (!aborted_) {
      check_not_stranded(block_barrier_, exited_, "__syncthreads()");
      check_not_stranded(warp_barriers_[w], warp_exited_[w], "warp collective");
    }
    if (exited_ == num_threads_) {
      exited_ = 0;
      std::fill(warp_exited_.begin(), warp_exited_.end(), 0);
      ++block_generation_;
      cv_.notify_all();
      return;
    }
    const uint64_t gen = block_generation_;
    wait_until(lock, [&] { return block_generation_ != gen || aborted_; }, "the end of the block");
  }

  void fail(const std::string& message) {
    std::lock_guard<std::mutex> lock(mutex_);
    fail_locked(message);
  }

  bool aborted() {
    std::lock_guard<std::mutex> lock(mutex_);
    return aborted_;
  }

  std::string error() {
    std::lock_guard<std::mutex> lock(mutex_);
    return error_;
  }

  // Exchange slots of warp `w`, kSlotBytes per lane.
  unsigned char* warp_slot(int tid) { return warp_slots_.data() + static_cast<size_t>(tid) * kSlotBytes; }
  unsigned char* warp_slot_base(int tid) {
    return warp_slots_.data() + static_cast<size_t>(tid / kWarpSize) * kWarpSize * kSlotBytes;
  }
  int warp_size_of(int tid) const { return warp_barriers_[tid / kWarpSize].expected; }

  static constexpr size_t kSlotBytes = 16;

 private:
  void fail_locked(const std::string& message) {
    if (!aborted_) {
      aborted_ = true;
      error_ = message;
    }
    cv_.notify_all();
  }

  // Some threads wait at barrier `b` while every other thread of its scope has returned:
  // the barrier can never complete (a barrier inside a branch not taken by all threads).
  void check_not_stranded(Barrier& b, int exited, const char* what) {
    if (b.arrived > 0 && b.arrived + exited == b.expected) {
      fail_locked(std::string(what) + " at " + b.site.str() + " was reached by " + std::to_string(b.arrived) + " of " +
                  std::to_string(b.expected) +
                  " threads; the others returned from the kernel "
                  "(barrier in divergent code)");
    }
  }

  template <typename Pred>
  void wait_until(std::unique_lock<std::mutex>& lock, Pred pred, const std::string& where) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
    while (!pred()) {
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && !pred()) {
        fail_locked("deadlock: a thread waited more than " + std::to_string(timeout_s_) + " s at " + where);
      }
    }
    if (aborted_) throw KernelAborted{};
  }

  void wait_at(Barrier& b, int& exited, BarrierSite site, const char* what) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (aborted_) throw KernelAborted{};
    if (b.arrived == 0) {
      b.site = site;
    } else if (!(b.site == site)) {
      fail_locked(std::string("threads of one block wait at two different ") + what + " call sites, " + b.site.str() +
                  " and " + site.str() + " (barrier in divergent code)");
      throw KernelAborted{};
    }
    ++b.arrived;
    if (b.arrived + exited == b.expected) {
      if (exited > 0) {
        fail_locked(std::string(what) + " at " + site.str() + " was reached by " + std::to_string(b.arrived) + " of " +
                    std::to_string(b.expected) +
                    " threads; the others returned from the kernel "
                    "(barrier in divergent code)");
        throw KernelAborted{};
      }
      b.arrived = 0;
      ++b.generation;
      cv_.notify_all();
      return;
    }
    const uint64_t gen = b.generation;
    wait_until(lock, [&] { return b.generation != gen || aborted_; }, std::string(what) + " at " + site.str());
  }

  const int num_threads_;
  std::mutex mutex_;
  std::condition_variable cv_;
  Barrier block_barrier_;
  std::vector<Barrier> warp_barriers_;
  int exited_ = 0;
  std::vector<int> warp_exited_;
  uint64_t block_generation_ = 0;
  bool aborted_ = false;
  std::string error_;
  double timeout_s_ = 30.0;
  std::vector<unsigned char> warp_slots_;
};

struct ThreadContext {
  BlockState* block = nullptr;
  int tid = 0;  // linear thread index within the block
};

inline thread_local ThreadContext current;

inline BlockState& current_block() {
  if (current.block == nullptr) {
    throw std::logic_error("batchgan CUDA emulator: a device primitive was called outside an emulated launch");
  }
  return *current.block;
}

inline void syncthreads_at(const char* file, int line) {
  current_block().sync_block(current.tid, BarrierSite{file, line});
}

// Sum over the lanes of the calling warp; every lane gets the total. All lanes of the warp
// must call it, as with __shfl_xor_sync(0xffffffff, ...) on the GPU.
template <typename T>
T warp_reduce_sum(T value) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= BlockState::kSlotBytes,
                "warp_reduce_sum: unsupported type");
  BlockState& block = current_block();
  const int tid = current.tid;
  std::memcpy(block.warp_slot(tid), &value, sizeof(T));
  block.sync_warp(tid, BarrierSite{__FILE__, __LINE__});
  const unsigned char* base = block.warp_slot_base(tid);
  T total;
  std::memcpy(&total, base, sizeof(T));
  for (int lane = 1; lane < block.warp_size_of(tid); ++lane) {
    T v;
    std::memcpy(&v, base + lane * BlockState::kSlotBytes, sizeof(T));
    total += v;
  }
  // No lane may overwrite its slot (next reduction) before all lanes have read this one.
  block.sync_warp(tid, BarrierSite{__FILE__, __LINE__});
  return total;
}

inline std::mutex& launch_mutex() {
  static std::mutex m;
  return m;
}

// Runs kernel(args...) over the configured grid. Throws std::runtime_error with the first
// error raised by a thread (barrier misuse, deadlock, an exception from device code).
template <typename Kernel, typename... Args>
void launch(const LaunchConfig& cfg, Kernel kernel, Args... args) {
  // Launches are serialised: `__shared__` statics are one instance per kernel.
  std::lock_guard<std::mutex> launch_lock(launch_mutex());
  const dim3 grid(cfg.grid[0], cfg.grid[1], cfg.grid[2]);
  const dim3 block(cfg.block[0], cfg.block[1], cfg.block[2]);
  const uint64_t num_threads = uint64_t(block.x) * block.y * block.z;
  const uint64_t num_blocks = uint64_t(grid.x) * grid.y * grid.z;
  if (num_threads == 0 || num_threads > 1024 || num_blocks == 0 || grid.y > 65535 || grid.z > 65535 || block.z > 64) {
    // What cudaLaunchKernel reports as cudaErrorInvalidConfiguration.
    throw std::runtime_error("batchgan CUDA emulator: invalid launch configuration (grid " + std::to_string(grid.x) +
                             "x" + std::to_string(grid.y) + "x" + std::to_string(grid.z) + ", block " +
                             std::to_string(block.x) + "x" + std::to_string(block.y) + "x" + std::to_string(block.z) +
                             ")");
  }
  BlockState state(static_cast<int>(num_threads));
  std::vector<std::thread> threads;
  threads.reserve(num_threads);
  for (uint64_t t = 0; t < num_threads; ++t) {
    threads.emplace_back([&, t] {
      current.block = &state;
      current.tid = static_cast<int>(t);
      threadIdx = dim3(static_cast<unsigned>(t % block.x), static_cast<unsigned>((t / block.x) % block.y),
                       static_cast<unsigned>(t / (uint64_t(block.x) * block.y)));
      blockDim = block;
      gridDim = grid;
      for (uint64_t b = 0; b < num_blocks; ++b) {
        blockIdx = dim3(static_cast<unsigned>(b % grid.x), static_cast<unsigned>((b / grid.x) % grid.y),
                        static_cast<unsigned>(b / (uint64_t(grid.x) * grid.y)));
        try {
          kernel(args...);
        } catch (const KernelAborted&) {
        } catch (const std::exception& e) {
          state.fail(std::string("exception in device code: ") + e.what());
        } catch (...) {
          state.fail("unknown exception in device code");
        }
        try {
          state.finish_block(static_cast<int>(t));
        } catch (const KernelAborted&) {
        }
        if (state.aborted()) break;
      }
      current = ThreadContext{};
    });
  }
  for (auto& th : threads) th.join();
  const std::string error = state.error();
  if (!error.empty()) {
    throw std::runtime_error("batchgan CUDA emulator: " + error);
  }
}

}  // namespace emu
}  // namespace batchgan

#define __syncthreads() ::batchgan::emu::syncthreads_at(__FILE__, __LINE__)

// atomicAdd on host memory, with CUDA's signature (returns the old value).
template <typename T>
inline T atomicAdd(T* address, T value) {
  static_assert(std::is_arithmetic<T>::value, "atomicAdd: arithmetic types only");
  return std::atomic_ref<T>(*address).fetch_add(value);
}
