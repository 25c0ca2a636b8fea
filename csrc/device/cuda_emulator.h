// A CPU emulator of the CUDA execution model, header-only, for running batchgan's device code
// in tests on machines without a GPU.
//
// What it emulates (the portable subset listed in device/device_api.h):
//  - a launch runs the grid's blocks one after another; the threads of a block are fibers on
//    the launching thread, each with its own stack, switched at barriers only: a barrier costs
//    a user-space context switch per thread (a few register moves on x86-64, ucontext
//    elsewhere) instead of waking every OS thread of the block, so a launch of thousands of
//    blocks takes milliseconds, not minutes. The
//    fibers run in order on even blocks and in reverse order on odd blocks, so a missing
//    __syncthreads() between a write and a neighbour's read shows up as a stale read either way;
//  - threadIdx/blockIdx/blockDim/gridDim are thread_local, set before each switch to a fiber;
//  - `__shared__` arrays are function-level statics: one instance, shared by the block's
//    threads (blocks never overlap, so this is per-block memory);
//  - __syncthreads() is a barrier of the block, warp_reduce_sum a barrier of the warp;
//  - atomicAdd is an atomic read-modify-write on host memory.
// Barrier misuse is an error, never a silent pass: threads of one block waiting at two
// different __syncthreads() call sites, a barrier some threads of the block return without
// reaching, a partial-warp collective, and threads waiting at barriers that can never
// complete (a deadlock: detected as soon as every thread of the block is waiting) all make
// the launch throw.
#pragma once

#include <sys/mman.h>
#include <ucontext.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
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

// Stack of one fiber: mmap'ed once, reused by every block and launch (pages are committed
// only when touched). Device code is shallow; 256 KiB leaves room for exception unwinding.
constexpr size_t kFiberStackBytes = size_t(256) << 10;

class FiberStack {
 public:
  FiberStack() {
    void* p =
        mmap(nullptr, kFiberStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("batchgan CUDA emulator: cannot allocate a fiber stack");
    base_ = p;
  }
  FiberStack(const FiberStack&) = delete;
  FiberStack& operator=(const FiberStack&) = delete;
  ~FiberStack() { munmap(base_, kFiberStackBytes); }
  void* base() const { return base_; }

 private:
  void* base_ = nullptr;
};

// ---- fiber context switch ----------------------------------------------------------------------
// switch_context(from, to) saves the running fiber's context in `from` and resumes `to`;
// init_context(ctx, stack, entry) prepares a context that starts `entry()` on `stack`.
#if defined(__x86_64__) && defined(__ELF__)
// The callee-saved registers of the System V ABI, the x87 control word and MXCSR are pushed on
// the running stack, which is then exchanged: no signal-mask syscall, unlike swapcontext.
// (One COMDAT copy of the routine in the linked library.)
extern "C" void batchgan_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .pushsection .text.batchgan_emu_switch,"axG",@progbits,batchgan_emu_switch,comdat
  .weak batchgan_emu_switch
  .hidden batchgan_emu_switch
  .type batchgan_emu_switch,@function
batchgan_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $16, %rsp
  stmxcsr 8(%rsp)
  fnstcw (%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  fldcw (%rsp)
  ldmxcsr 8(%rsp)
  addq $16, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size batchgan_emu_switch,.-batchgan_emu_switch
  .popsection
)");

struct FiberContext {
  void* sp = nullptr;
};

inline void switch_context(FiberContext& from, FiberContext& to) { batchgan_emu_switch(&from.sp, to.sp); }

inline void init_context(FiberContext& ctx, void* stack, size_t size, void (*entry)()) {
  // The frame batchgan_emu_switch pops: control words, six registers, then `ret` into entry
  // with the stack 16-byte aligned as after a call (a null return address above it).
  auto top = reinterpret_cast<uintptr_t>(stack) + size;
  top &= ~uintptr_t(15);
  uint64_t* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = 0;                                  // entry's return address: never returns
  *--sp = reinterpret_cast<uint64_t>(entry);  // popped by ret
  for (int r = 0; r < 6; ++r) *--sp = 0;      // rbp, rbx, r12-r15
  *--sp = 0x1f80;                             // MXCSR: default (all exceptions masked)
  *--sp = 0x037f;                             // x87 control word: default
  ctx.sp = sp;
}
#else
struct FiberContext {
  ucontext_t uc;
};

inline void switch_context(FiberContext& from, FiberContext& to) { swapcontext(&from.uc, &to.uc); }

inline void init_context(FiberContext& ctx, void* stack, size_t size, void (*entry)()) {
  getcontext(&ctx.uc);
  ctx.uc.uc_stack.ss_sp = stack;
  ctx.uc.uc_stack.ss_size = size;
  ctx.uc.uc_link = nullptr;  // entry never returns: it switches back to the scheduler
  makecontext(&ctx.uc, entry, 0);
}
#endif

enum class FiberState { kRunnable, kAtBlockBarrier, kAtWarpBarrier, kExited };

struct Fiber {
  FiberContext context;
  FiberState state = FiberState::kRunnable;
};

// A barrier over the threads of a block, or of one warp of it: where its waiting threads are.
struct Barrier {
  int expected = 0;
  int arrived = 0;
  BarrierSite site;
};

// One launch: the fibers of the current block and their scheduler, all on the launching thread.
class BlockState {
 public:
  BlockState(int num_threads, std::vector<FiberStack*> stacks, std::function<void()> body)
      : num_threads_(num_threads), stacks_(std::move(stacks)), body_(std::move(body)), fibers_(num_threads) {
    block_barrier_.expected = num_threads;
    const int num_warps = (num_threads + kWarpSize - 1) / kWarpSize;
    warp_barriers_.resize(num_warps);
    warp_exited_.assign(num_warps, 0);
    for (int w = 0; w < num_warps; ++w) {
      warp_barriers_[w].expected = std::min(kWarpSize, num_threads - w * kWarpSize);
    }
    warp_slots_.assign(static_cast<size_t>(num_warps) * kWarpSize * kSlotBytes, 0);
  }

  // Runs every thread of the current block (blockIdx already set) to its end. `reverse`: the
  // order in which runnable fibers are resumed.
  void run_block(const dim3& block, bool reverse) {
    for (int t = 0; t < num_threads_; ++t) {
      Fiber& f = fibers_[t];
      init_context(f.context, stacks_[t]->base(), kFiberStackBytes, &BlockState::fiber_entry);
      f.state = FiberState::kRunnable;
    }
    exited_ = 0;
    std::fill(warp_exited_.begin(), warp_exited_.end(), 0);
    block_barrier_.arrived = 0;
    for (Barrier& b : warp_barriers_) b.arrived = 0;
    while (exited_ < num_threads_) {
      for (int k = 0; k < num_threads_; ++k) {
        const int t = reverse ? num_threads_ - 1 - k : k;
        if (fibers_[t].state != FiberState::kRunnable) continue;
        resume(t, block);
      }
      if (exited_ < num_threads_) release_barriers();
    }
  }

  // __syncthreads() of the current fiber.
  void sync_block(int tid, BarrierSite site) {
    wait_at(tid, block_barrier_, FiberState::kAtBlockBarrier, site, "__syncthreads()");
  }

  // A barrier of the warp of thread `tid` (used by the warp reductions).
  void sync_warp(int tid, BarrierSite site) {
    wait_at(tid, warp_barriers_[tid / kWarpSize], FiberState::kAtWarpBarrier, site, "warp collective");
  }

  void fail(const std::string& message) {
    if (!aborted_) {
      aborted_ = true;
      error_ = message;
    }
  }

  bool aborted() const { return aborted_; }
  const std::string& error() const { return error_; }

  // Exchange slots of warp `w`, kSlotBytes per lane.
  unsigned char* warp_slot(int tid) { return warp_slots_.data() + static_cast<size_t>(tid) * kSlotBytes; }
  unsigned char* warp_slot_base(int tid) {
    return warp_slots_.data() + static_cast<size_t>(tid / kWarpSize) * kWarpSize * kSlotBytes;
  }
  int warp_size_of(int tid) const { return warp_barriers_[tid / kWarpSize].expected; }

  static constexpr size_t kSlotBytes = 16;

 private:
  static void fiber_entry();

  void resume(int t, const dim3& block);

  void wait_at(int tid, Barrier& b, FiberState state, BarrierSite site, const char* what) {
    if (aborted_) throw KernelAborted{};
    if (b.arrived == 0) {
      b.site = site;
    } else if (!(b.site == site)) {
      fail(std::string("threads of one block wait at two different ") + what + " call sites, " + b.site.str() +
           " and " + site.str() + " (barrier in divergent code)");
      throw KernelAborted{};
    }
    ++b.arrived;
    fibers_[tid].state = state;
    switch_context(fibers_[tid].context, scheduler_);
    if (aborted_) throw KernelAborted{};
  }

  // Every live fiber waits at a barrier: release the warps whose live lanes all arrived, else
  // the block barrier when every thread arrived; anything else can never complete.
  void release_barriers() {
    if (aborted_) {
      for (Fiber& f : fibers_) {
        if (f.state != FiberState::kExited) f.state = FiberState::kRunnable;  // unwinds with KernelAborted
      }
      return;
    }
    bool released = false;
    for (size_t w = 0; w < warp_barriers_.size(); ++w) {
      Barrier& b = warp_barriers_[w];
      if (b.arrived == 0) continue;
      if (b.arrived + warp_exited_[w] == b.expected && warp_exited_[w] > 0) {
        return stranded(b, "warp collective");
      }
      if (b.arrived == b.expected) {
        for (int t = static_cast<int>(w) * kWarpSize; t < static_cast<int>(w) * kWarpSize + b.expected; ++t) {
          fibers_[t].state = FiberState::kRunnable;
        }
        b.arrived = 0;
        released = true;
      }
    }
    if (released) return;
    Barrier& b = block_barrier_;
    if (b.arrived > 0 && b.arrived + exited_ == b.expected) {
      if (exited_ > 0) return stranded(b, "__syncthreads()");
      for (Fiber& f : fibers_) f.state = FiberState::kRunnable;
      b.arrived = 0;
      return;
    }
    fail("deadlock: every thread of the block waits, some at __syncthreads()" +
         (b.arrived > 0 ? " (" + b.site.str() + ")" : std::string()) +
         " and some at a warp collective that the rest of their warp does not reach");
    release_barriers();
  }

  void stranded(const Barrier& b, const char* what) {
    fail(std::string(what) + " at " + b.site.str() + " was reached by " + std::to_string(b.arrived) + " of " +
         std::to_string(b.expected) + " threads; the others returned from the kernel (barrier in divergent code)");
    release_barriers();
  }

  const int num_threads_;
  std::vector<FiberStack*> stacks_;
  std::function<void()> body_;
  std::vector<Fiber> fibers_;
  FiberContext scheduler_;
  Barrier block_barrier_;
  std::vector<Barrier> warp_barriers_;
  int exited_ = 0;
  std::vector<int> warp_exited_;
  bool aborted_ = false;
  std::string error_;
  std::vector<unsigned char> warp_slots_;
};

struct ThreadContext {
  BlockState* block = nullptr;
  int tid = 0;  // linear thread index within the block
};

inline thread_local ThreadContext current;

inline void BlockState::resume(int t, const dim3& block) {
  current.tid = t;
  threadIdx = dim3(static_cast<unsigned>(t % block.x), static_cast<unsigned>((t / block.x) % block.y),
                   static_cast<unsigned>(t / (block.x * block.y)));
  switch_context(scheduler_, fibers_[t].context);
}

// The body of one emulated thread for one block; ends by switching back to the scheduler,
// which never resumes it (the next block starts it afresh).
inline void BlockState::fiber_entry() {
  BlockState* s = current.block;
  const int tid = current.tid;
  try {
    s->body_();
  } catch (const KernelAborted&) {
  } catch (const std::exception& e) {
    s->fail(std::string("exception in device code: ") + e.what());
  } catch (...) {
    s->fail("unknown exception in device code");
  }
  s->fibers_[tid].state = FiberState::kExited;
  ++s->exited_;
  ++s->warp_exited_[tid / kWarpSize];
  switch_context(s->fibers_[tid].context, s->scheduler_);
}

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

// Fiber stacks, grown to the largest block seen; guarded by launch_mutex().
inline std::vector<FiberStack*>& fiber_stacks(size_t count) {
  static std::vector<FiberStack*> stacks;
  while (stacks.size() < count) stacks.push_back(new FiberStack());
  return stacks;
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
  std::vector<FiberStack*>& all = fiber_stacks(num_threads);
  BlockState state(static_cast<int>(num_threads), std::vector<FiberStack*>(all.begin(), all.begin() + num_threads),
                   [&] { kernel(args...); });
  const ThreadContext saved = current;
  const dim3 saved_idx[4] = {threadIdx, blockIdx, blockDim, gridDim};
  current.block = &state;
  blockDim = block;
  gridDim = grid;
  for (uint64_t b = 0; b < num_blocks && !state.aborted(); ++b) {
    blockIdx = dim3(static_cast<unsigned>(b % grid.x), static_cast<unsigned>((b / grid.x) % grid.y),
                    static_cast<unsigned>(b / (uint64_t(grid.x) * grid.y)));
    state.run_block(block, b % 2 == 1);
  }
  current = saved;
  threadIdx = saved_idx[0];
  blockIdx = saved_idx[1];
  blockDim = saved_idx[2];
  gridDim = saved_idx[3];
  if (state.aborted()) {
    throw std::runtime_error("batchgan CUDA emulator: " + state.error());
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
