// A CPU emulator of the CUDA execution model, header-only, for running batchgan's device code
// in tests on machines without a GPU. It is built to make the bugs a GPU would show show up on
// the CPU, reproducibly:
//  - a launch runs the grid's blocks one after another, in a seeded pseudo-random order; the
//    threads of a block are fibers on the launching thread, each with its own stack, switched
//    at barriers only (a user-space context switch: a launch of thousands of blocks takes
//    milliseconds);
//  - the scheduler is warp-granular: it picks a warp with runnable lanes and resumes each of
//    its lanes, in a seeded order, until that lane reaches a barrier or exits. Which warp runs
//    next follows a policy drawn per block: a random warp each time, one warp running ahead
//    as far as it can (to its next __syncthreads or its end), or warps in ascending or
//    descending order. So a missing barrier lets one warp read what another has not written
//    yet, or overwrite what another has not read yet, under one policy or another;
//  - shared memory (BATCHGAN_SHARED in device_api.h; a plain `__shared__` does not compile
//    here) is filled with 0xFF bytes, a NaN in every floating type, before the first thread of
//    each block touches it, so a read of shared memory the block never wrote yields NaN, not
//    the previous block's value;
//  - block sizes must be multiples of the warp size (32) and warp collectives need every lane
//    of the warp (as __shfl_xor_sync with a full mask);
//  - __syncthreads() is a barrier of the block, warp_reduce_sum a barrier of the warp, atomicAdd
//    an atomic read-modify-write on host memory; threadIdx/blockIdx/blockDim/gridDim are
//    thread_local, set before each switch to a fiber.
// Barrier misuse is an error, never a silent pass: threads of one block waiting at two
// different __syncthreads() call sites, a barrier some threads of the block return without
// reaching, a partial-warp collective, and threads waiting at barriers that can never
// complete (a deadlock) all make the launch throw.
//
// For tests of the tests: every __syncthreads() call site is registered by file:line when it
// first runs, and one site can be switched off at run time (disable_barrier, or the environment
// variable BATCHGAN_EMULATOR_DISABLE_BARRIER=<file name>:<line>), so a test can show that the
// emulated tests fail without that barrier. The schedule seed is set with
// set_schedule_seed (default from BATCHGAN_EMULATOR_SEED, else 0); a seed and the sequence of
// launches determine every order, so a failure reproduces.
//
// Under AddressSanitizer the fiber switches are announced (__sanitizer_*_switch_fiber), so
// ASan knows which stack is live. Under ThreadSanitizer every emulated thread is a TSan fiber
// switched without synchronisation, and barriers are release/acquire pairs, so TSan sees the
// threads of a block as concurrent and reports accesses that no barrier orders; one block is
// ordered after the next (they share the static storage of shared memory), and the emulator's
// own bookkeeping is hidden from TSan.
#pragma once

#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "common/launch_config.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define BATCHGAN_EMU_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define BATCHGAN_EMU_TSAN 1
extern "C" {
// TSan's dynamic annotations (exported by libtsan): ignore the calling fiber's memory accesses.
void AnnotateIgnoreReadsBegin(const char* file, int line);
void AnnotateIgnoreReadsEnd(const char* file, int line);
void AnnotateIgnoreWritesBegin(const char* file, int line);
void AnnotateIgnoreWritesEnd(const char* file, int line);
}
#endif

// ---- CUDA spellings, mapped onto the host ---------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Shared memory is declared with BATCHGAN_SHARED (device_api.h), which gives each block fresh
// memory here; a plain `__shared__` would silently keep one block's values for the next.
#define __shared__ static_assert(false, "declare shared memory with BATCHGAN_SHARED(type, name, dims) (device_api.h)");

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

// A failed BATCHGAN_DEVICE_CHECK (device_api.h): the launch throws its message alone, the same
// text as the CPU kernel's error.
struct DeviceCheckFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- sanitizer hooks (no-ops in a normal build) -----------------------------------------------
// RAII: the emulator's own bookkeeping, which fibers and the scheduler share without the
// barriers' ordering, is invisible to TSan (only device code's accesses are checked).
struct EmulatorInternal {
  EmulatorInternal() {
#if defined(BATCHGAN_EMU_TSAN)
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
  }
  ~EmulatorInternal() {
#if defined(BATCHGAN_EMU_TSAN)
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
#endif
  }
  EmulatorInternal(const EmulatorInternal&) = delete;
  EmulatorInternal& operator=(const EmulatorInternal&) = delete;
};

// A happens-before edge for TSan: accesses before release(p) happen before those after a
// later acquire(p).
inline void tsan_release(void* p) {
#if defined(BATCHGAN_EMU_TSAN)
  __tsan_release(p);
#else
  (void)p;
#endif
}
inline void tsan_acquire(void* p) {
#if defined(BATCHGAN_EMU_TSAN)
  __tsan_acquire(p);
#else
  (void)p;
#endif
}

// ---- barrier call sites: names and the run-time switch for mutation tests ---------------------
// A site is "<file name>:<line>" of a __syncthreads() call. Guarded by launch_mutex() (sites
// register while a launch runs).
class BarrierRegistry {
 public:
  BarrierRegistry() {
    const char* site = std::getenv("BATCHGAN_EMULATOR_DISABLE_BARRIER");
    if (site) disabled_name_ = site;
  }

  // The id of the site, registered on first use.
  int lookup(const char* file, int line) {
    for (const Entry& e : cache_) {
      if (e.line == line && e.file == file) return e.id;
    }
    const std::string name = site_name(file, line);
    int id = static_cast<int>(std::find(names_.begin(), names_.end(), name) - names_.begin());
    if (id == static_cast<int>(names_.size())) names_.push_back(name);
    cache_.push_back(Entry{file, line, id});
    return id;
  }
  bool disabled(int id) const { return !disabled_name_.empty() && names_[id] == disabled_name_; }
  void disable(const std::string& name) { disabled_name_ = name; }
  const std::string& disabled_name() const { return disabled_name_; }
  const std::vector<std::string>& names() const { return names_; }
  const std::string& name(int id) const { return names_[id]; }

  static std::string site_name(const char* file, int line) {
    const char* base = std::strrchr(file, '/');
    return std::string(base ? base + 1 : file) + ":" + std::to_string(line);
  }

 private:
  struct Entry {
    const char* file;
    int line;
    int id;
  };
  std::vector<Entry> cache_;
  std::vector<std::string> names_;
  std::string disabled_name_;
};

inline BarrierRegistry& barrier_registry() {
  static BarrierRegistry registry;
  return registry;
}

// ---- the schedule's pseudo-random numbers ---------------------------------------------------
// splitmix64: small, fast, and good enough to vary orders; never used for numerics.
class ScheduleRng {
 public:
  explicit ScheduleRng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n > 0.
  uint64_t below(uint64_t n) { return next() % n; }

 private:
  uint64_t state_;
};

struct ScheduleState {
  uint64_t seed = 0;
  uint64_t launches = 0;  // launches since the seed was set: each gets its own stream
};

inline uint64_t seed_from_environment() {
  const char* s = std::getenv("BATCHGAN_EMULATOR_SEED");
  return (s && *s) ? std::strtoull(s, nullptr, 10) : 0;
}

inline ScheduleState& schedule_state() {
  static ScheduleState state{seed_from_environment(), 0};
  return state;
}

// Stack of one fiber: mmap'ed once, reused by every block and launch (pages are committed
// only when touched). Device code is shallow; 256 KiB leaves room for exception unwinding, and
// 1 MiB for the larger frames of a sanitized build.
#if defined(BATCHGAN_EMU_ASAN) || defined(BATCHGAN_EMU_TSAN)
constexpr size_t kFiberStackBytes = size_t(1) << 20;
#else
constexpr size_t kFiberStackBytes = size_t(256) << 10;
#endif

class FiberStack {
 public:
  FiberStack() {
    void* p =
        mmap(nullptr, kFiberStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("batchgan CUDA emulator: cannot allocate a fiber stack");
    base_ = p;
#if defined(BATCHGAN_EMU_TSAN)
    tsan_fiber_ = __tsan_create_fiber(0);
#endif
  }
  FiberStack(const FiberStack&) = delete;
  FiberStack& operator=(const FiberStack&) = delete;
  ~FiberStack() {
#if defined(BATCHGAN_EMU_TSAN)
    __tsan_destroy_fiber(tsan_fiber_);
#endif
    munmap(base_, kFiberStackBytes);
  }
  void* base() const { return base_; }
  // The TSan identity of the emulated thread that runs on this stack (null without TSan).
  void* tsan_fiber() const { return tsan_fiber_; }

 private:
  void* base_ = nullptr;
  void* tsan_fiber_ = nullptr;
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

// What a switch to `to` loads, read apart from the switch so that a caller can read it before
// TSan's identity changes to the thread switched to (see BlockState::resume).
inline void* switch_target(FiberContext& to) { return to.sp; }
inline void switch_context_to(FiberContext& from, void* target) { batchgan_emu_switch(&from.sp, target); }
inline void switch_context(FiberContext& from, FiberContext& to) { switch_context_to(from, switch_target(to)); }

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

inline ucontext_t* switch_target(FiberContext& to) { return &to.uc; }
inline void switch_context_to(FiberContext& from, ucontext_t* target) { swapcontext(&from.uc, target); }
inline void switch_context(FiberContext& from, FiberContext& to) { switch_context_to(from, switch_target(to)); }

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
  void* asan_fake_stack = nullptr;
};

struct BarrierSite {
  const char* file = nullptr;
  int line = 0;
  int id = -1;  // BarrierRegistry id for __syncthreads() sites, -1 for the warp collective's own
  bool operator==(const BarrierSite& o) const {
    return id >= 0 ? id == o.id : (line == o.line && o.id < 0 && std::strcmp(file, o.file) == 0);
  }
  std::string str() const { return BarrierRegistry::site_name(file ? file : "?", line); }
};

// A barrier over the threads of a block, or of one warp of it: where its waiting threads are.
// TSan's happens-before edge of one round is on sync[generation % 2]: a thread that passed the
// barrier and reaches its next round releases into the other slot, so it cannot hand its new
// accesses to a thread still leaving this round.
struct Barrier {
  int expected = 0;
  int arrived = 0;
  unsigned generation = 0;
  BarrierSite site;
  char sync[2] = {0, 0};
};

// How the scheduler picks the next warp; one policy per block, drawn from the seed.
enum class SchedulePolicy { kRandomWarp, kRunAhead, kAscending, kDescending };
constexpr int kNumSchedulePolicies = 4;

// One launch: the fibers of the current block and their scheduler, all on the launching thread.
class BlockState {
 public:
  BlockState(int num_threads, std::vector<FiberStack*> stacks, std::function<void()> body)
      : num_threads_(num_threads),
        num_warps_(num_threads / kWarpSize),
        stacks_(std::move(stacks)),
        body_(std::move(body)),
        fibers_(num_threads),
        warps_(num_warps_) {
    block_barrier_.expected = num_threads;
    for (Warp& w : warps_) w.barrier.expected = kWarpSize;
    warp_slots_.assign(static_cast<size_t>(num_threads) * kSlotBytes, 0);
    lane_order_.resize(kWarpSize);
#if defined(BATCHGAN_EMU_TSAN)
    scheduler_tsan_fiber_ = __tsan_get_current_fiber();
#endif
  }

  // Runs every thread of the current block (blockIdx already set) to its end.
  void run_block(const dim3& block, ScheduleRng& rng) {
    for (int t = 0; t < num_threads_; ++t) {
      Fiber& f = fibers_[t];
#if defined(BATCHGAN_EMU_ASAN)
      // The previous block's fiber on this stack never returned from its frames, so their
      // redzones are still poisoned: a reused fiber stack starts clean, as a new one would.
      __asan_unpoison_memory_region(stacks_[t]->base(), kFiberStackBytes);
#endif
      init_context(f.context, stacks_[t]->base(), kFiberStackBytes, &BlockState::fiber_entry);
      f.state = FiberState::kRunnable;
      f.asan_fake_stack = nullptr;
    }
    exited_ = 0;
    for (Warp& w : warps_) {
      w.runnable = kWarpSize;
      w.exited = 0;
      w.barrier.arrived = 0;
    }
    block_barrier_.arrived = 0;
    fresh_shared_.clear();
    policy_ = static_cast<SchedulePolicy>(rng.below(kNumSchedulePolicies));
    int warp = -1;
    while (exited_ < num_threads_) {
      if (aborted_) {
        unwind();
        break;
      }
      warp = pick_warp(warp, rng);
      if (warp < 0) {
        release_block_barrier();
        continue;
      }
      run_warp(warp, block, rng);
      settle_warp(warp);
    }
  }

  // __syncthreads() of the current fiber.
  void sync_block(int tid, BarrierSite site) {
    wait_at(tid, block_barrier_, FiberState::kAtBlockBarrier, site, "__syncthreads()");
  }

  // A barrier of the warp of thread `tid` (used by the warp reductions).
  void sync_warp(int tid, BarrierSite site) {
    wait_at(tid, warps_[tid / kWarpSize].barrier, FiberState::kAtWarpBarrier, site, "warp collective");
  }

  // The first failure of the launch wins; `device_check`: a failed BATCHGAN_DEVICE_CHECK, whose
  // message is the op's own error.
  void fail(const std::string& message, bool device_check = false) {
    if (!aborted_) {
      aborted_ = true;
      error_ = message;
      device_check_failed_ = device_check;
    }
  }

  bool device_check_failed() const { return device_check_failed_; }

  bool aborted() const { return aborted_; }
  const std::string& error() const { return error_; }

  // Fills a shared-memory variable with 0xFF bytes the first time a thread of this block
  // declares it (every thread runs the declaration before it uses the variable).
  void fresh_shared(void* p, size_t bytes) {
    EmulatorInternal internal;
    if (std::find(fresh_shared_.begin(), fresh_shared_.end(), p) != fresh_shared_.end()) return;
    fresh_shared_.push_back(p);
    std::memset(p, 0xFF, bytes);
  }

  // Exchange slots of a warp, kSlotBytes per lane.
  unsigned char* warp_slot(int tid) { return warp_slots_.data() + static_cast<size_t>(tid) * kSlotBytes; }
  unsigned char* warp_slot_base(int tid) {
    return warp_slots_.data() + static_cast<size_t>(tid / kWarpSize) * kWarpSize * kSlotBytes;
  }

  static constexpr size_t kSlotBytes = 16;

 private:
  struct Warp {
    Barrier barrier;
    int runnable = 0;  // lanes in FiberState::kRunnable
    int exited = 0;
  };

  static void fiber_entry();

  void resume(int t, const dim3& block);

  int pick_warp(int previous, ScheduleRng& rng) {
    if (policy_ == SchedulePolicy::kRunAhead && previous >= 0 && warps_[previous].runnable > 0) return previous;
    if (policy_ == SchedulePolicy::kAscending || policy_ == SchedulePolicy::kDescending) {
      for (int k = 0; k < num_warps_; ++k) {
        const int w = policy_ == SchedulePolicy::kAscending ? k : num_warps_ - 1 - k;
        if (warps_[w].runnable > 0) return w;
      }
      return -1;
    }
    int candidates = 0;
    for (const Warp& w : warps_) candidates += w.runnable > 0;
    if (candidates == 0) return -1;
    int pick = static_cast<int>(rng.below(candidates));
    for (int w = 0; w < num_warps_; ++w) {
      if (warps_[w].runnable > 0 && pick-- == 0) return w;
    }
    return -1;
  }

  // Resumes every runnable lane of warp w once, each to its next barrier or its end.
  void run_warp(int w, const dim3& block, ScheduleRng& rng) {
    for (int l = 0; l < kWarpSize; ++l) lane_order_[l] = l;
    if (policy_ == SchedulePolicy::kDescending) {
      std::reverse(lane_order_.begin(), lane_order_.end());
    } else if (policy_ != SchedulePolicy::kAscending) {
      for (int l = kWarpSize - 1; l > 0; --l) std::swap(lane_order_[l], lane_order_[rng.below(l + 1)]);
    }
    for (int l : lane_order_) {
      const int t = w * kWarpSize + l;
      if (fibers_[t].state == FiberState::kRunnable) resume(t, block);
      if (aborted_) return;
    }
  }

  // Releases warp w's collective when all its lanes have arrived.
  void settle_warp(int w) {
    Warp& wp = warps_[w];
    Barrier& b = wp.barrier;
    if (b.arrived == 0 || aborted_) return;
    if (b.arrived == kWarpSize) {
      release(b, w * kWarpSize, (w + 1) * kWarpSize, FiberState::kAtWarpBarrier);
    } else if (b.arrived + wp.exited == kWarpSize) {
      stranded(b, wp.exited, "warp collective");
    }
  }

  // No fiber is runnable: every live thread waits. Release the block barrier when all of them
  // wait there; anything else can never complete.
  void release_block_barrier() {
    Barrier& b = block_barrier_;
    if (b.arrived > 0 && b.arrived + exited_ == num_threads_) {
      if (exited_ > 0) return stranded(b, exited_, "__syncthreads()");
      return release(b, 0, num_threads_, FiberState::kAtBlockBarrier);
    }
    fail("deadlock: every thread of the block waits, some at __syncthreads()" +
         (b.arrived > 0 ? " (" + b.site.str() + ")" : std::string()) +
         " and some at a warp collective that the rest of their warp does not reach");
  }

  void release(Barrier& b, int first, int last, FiberState waiting) {
    for (int t = first; t < last; ++t) {
      if (fibers_[t].state == waiting) {
        fibers_[t].state = FiberState::kRunnable;
        ++warps_[t / kWarpSize].runnable;
      }
    }
    b.arrived = 0;
    ++b.generation;
  }

  void stranded(const Barrier& b, int exited, const char* what) {
    fail(std::string(what) + " at " + b.site.str() + " was reached by " + std::to_string(b.arrived) + " of " +
         std::to_string(b.arrived + exited) +
         " threads; the others returned from the kernel (barrier in divergent code)");
  }

  // After a failure: every live fiber is resumed once more and unwinds with KernelAborted.
  void unwind() {
    for (int t = 0; t < num_threads_; ++t) {
      if (fibers_[t].state != FiberState::kExited) resume(t, blockDim);
    }
  }

  void wait_at(int tid, Barrier& b, FiberState state, BarrierSite site, const char* what) {
    void* sync = nullptr;
    {
      EmulatorInternal internal;
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
      --warps_[tid / kWarpSize].runnable;
      sync = &b.sync[b.generation % 2];
    }
    tsan_release(sync);
    switch_to_scheduler(tid, false);
    tsan_acquire(sync);
    if (aborted_) throw KernelAborted{};
  }

  // The running fiber yields to the scheduler; `last`: it has exited and is never resumed.
  void switch_to_scheduler(int tid, bool last) {
    Fiber& f = fibers_[tid];
#if defined(BATCHGAN_EMU_ASAN)
    __sanitizer_start_switch_fiber(last ? nullptr : &f.asan_fake_stack, scheduler_stack_bottom_, scheduler_stack_size_);
#endif
#if defined(BATCHGAN_EMU_TSAN)
    // A thread's exit synchronises with the scheduler, as a kernel's end does with the host code
    // after the launch: its last accesses (this function's, after fiber_entry's release of
    // block_end_sync) happen before the launching thread reuses its stack. A yield does not:
    // the emulated threads are ordered by their barriers only.
    __tsan_switch_to_fiber(scheduler_tsan_fiber_, last ? 0 : __tsan_switch_to_fiber_no_sync);
#endif
    switch_context(f.context, scheduler_);
    (void)last;
    entered_fiber(tid);
  }

  // Called on a fiber's stack right after a switch to it.
  void entered_fiber(int tid) {
#if defined(BATCHGAN_EMU_ASAN)
    __sanitizer_finish_switch_fiber(fibers_[tid].asan_fake_stack, &scheduler_stack_bottom_, &scheduler_stack_size_);
#else
    (void)tid;
#endif
  }

  const int num_threads_;
  const int num_warps_;
  std::vector<FiberStack*> stacks_;
  std::function<void()> body_;
  std::vector<Fiber> fibers_;
  FiberContext scheduler_;
  Barrier block_barrier_;
  std::vector<Warp> warps_;
  int exited_ = 0;
  bool aborted_ = false;
  bool device_check_failed_ = false;
  std::string error_;
  std::vector<unsigned char> warp_slots_;
  std::vector<int> lane_order_;
  std::vector<void*> fresh_shared_;
  SchedulePolicy policy_ = SchedulePolicy::kRandomWarp;
  const void* scheduler_stack_bottom_ = nullptr;
  size_t scheduler_stack_size_ = 0;
  void* scheduler_tsan_fiber_ = nullptr;

 public:
  // TSan's edges from the host code before the launch to the first block's threads, from each
  // block's threads to the next block's (blocks share the static shared-memory storage, one
  // after the other), and from the last block to the host code after the launch.
  char block_begin_sync = 0;
  char block_end_sync = 0;
};

struct ThreadContext {
  BlockState* block = nullptr;
  int tid = 0;  // linear thread index within the block
};

inline thread_local ThreadContext current;

inline void BlockState::resume(int t, const dim3& block) {
  {
    EmulatorInternal internal;
    current.tid = t;
    threadIdx = dim3(static_cast<unsigned>(t % block.x), static_cast<unsigned>((t / block.x) % block.y),
                     static_cast<unsigned>(t / (block.x * block.y)));
  }
#if defined(BATCHGAN_EMU_ASAN)
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, stacks_[t]->base(), kFiberStackBytes);
#endif
  // Read on the scheduler's behalf, before TSan's identity becomes the thread's: a block's fresh
  // thread has not yet acquired block_begin_sync, so its own reads of the scheduler's state
  // would race with the launch that wrote it.
  const auto target = switch_target(fibers_[t].context);
#if defined(BATCHGAN_EMU_TSAN)
  __tsan_switch_to_fiber(stacks_[t]->tsan_fiber(), __tsan_switch_to_fiber_no_sync);
#endif
  switch_context_to(scheduler_, target);
#if defined(BATCHGAN_EMU_ASAN)
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
}

// The body of one emulated thread for one block; ends by switching back to the scheduler,
// which never resumes it (the next block starts it afresh).
inline void BlockState::fiber_entry() {
  BlockState* s = current.block;
  const int tid = current.tid;
  s->entered_fiber(tid);
  tsan_acquire(&s->block_begin_sync);
  if (!s->aborted_) {
    try {
      s->body_();
    } catch (const KernelAborted&) {
    } catch (const DeviceCheckFailed& e) {
      s->fail(e.what(), /*device_check=*/true);
    } catch (const std::exception& e) {
      s->fail(std::string("exception in device code: ") + e.what());
    } catch (...) {
      s->fail("unknown exception in device code");
    }
  }
  tsan_release(&s->block_end_sync);
  {
    EmulatorInternal internal;
    s->fibers_[tid].state = FiberState::kExited;
    ++s->exited_;
    --s->warps_[tid / kWarpSize].runnable;
    ++s->warps_[tid / kWarpSize].exited;
  }
  s->switch_to_scheduler(tid, true);
}

inline BlockState& current_block() {
  if (current.block == nullptr) {
    throw std::logic_error("batchgan CUDA emulator: a device primitive was called outside an emulated launch");
  }
  return *current.block;
}

inline void syncthreads_at(const char* file, int line) {
  BlockState& block = current_block();
  int id;
  {
    EmulatorInternal internal;
    BarrierRegistry& registry = barrier_registry();
    id = registry.lookup(file, line);
    if (registry.disabled(id)) return;  // a mutant: this call site is switched off
  }
  block.sync_block(current.tid, BarrierSite{file, line, id});
}

inline void fresh_shared(void* p, size_t bytes) { current_block().fresh_shared(p, bytes); }

// Sum over the 32 lanes of the calling warp; every lane gets the total. All lanes of the warp
// must call it, as with __shfl_xor_sync(0xffffffff, ...) on the GPU.
template <typename T>
T warp_reduce_sum(T value) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= BlockState::kSlotBytes,
                "warp_reduce_sum: unsupported type");
  BlockState& block = current_block();
  const int tid = current.tid;
  {
    EmulatorInternal internal;  // the slots stand for registers exchanged by the shuffles
    std::memcpy(block.warp_slot(tid), &value, sizeof(T));
  }
  block.sync_warp(tid, BarrierSite{__FILE__, __LINE__});
  T total;
  {
    EmulatorInternal internal;
    const unsigned char* base = block.warp_slot_base(tid);
    std::memcpy(&total, base, sizeof(T));
    for (int lane = 1; lane < kWarpSize; ++lane) {
      T v;
      std::memcpy(&v, base + lane * BlockState::kSlotBytes, sizeof(T));
      total += v;
    }
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

inline void set_schedule_seed(uint64_t seed) {
  std::lock_guard<std::mutex> lock(launch_mutex());
  schedule_state() = ScheduleState{seed, 0};
}

inline uint64_t schedule_seed() {
  std::lock_guard<std::mutex> lock(launch_mutex());
  return schedule_state().seed;
}

// The __syncthreads() call sites that have run so far, as "<file name>:<line>".
inline std::vector<std::string> barrier_sites() {
  std::lock_guard<std::mutex> lock(launch_mutex());
  return barrier_registry().names();
}

// Switches one __syncthreads() call site off ("" switches every site on again).
inline void disable_barrier(const std::string& site) {
  std::lock_guard<std::mutex> lock(launch_mutex());
  barrier_registry().disable(site);
}

inline std::string disabled_barrier() {
  std::lock_guard<std::mutex> lock(launch_mutex());
  return barrier_registry().disabled_name();
}

// Block b of the launch runs as the order[b]-th: an affine permutation a*b + c mod n with a
// odd and coprime to n, so any grid size is covered without storing a permutation.
class BlockOrder {
 public:
  BlockOrder(uint64_t n, ScheduleRng& rng) : n_(n) {
    if (n_ <= 1) return;
    c_ = rng.below(n_);
    do {
      a_ = rng.below(n_) | 1;
    } while (gcd(a_, n_) != 1);
  }
  uint64_t operator[](uint64_t k) const { return n_ <= 1 ? k : static_cast<uint64_t>((__uint128_t(a_) * k + c_) % n_); }

 private:
  static uint64_t gcd(uint64_t a, uint64_t b) {
    while (b != 0) {
      const uint64_t r = a % b;
      a = b;
      b = r;
    }
    return a;
  }
  uint64_t n_;
  uint64_t a_ = 1;
  uint64_t c_ = 0;
};

// Runs kernel(args...) over the configured grid. Throws std::runtime_error with the first
// error raised by a thread (barrier misuse, deadlock, an exception from device code).
template <typename Kernel, typename... Args>
void launch(const LaunchConfig& cfg, Kernel kernel, Args... args) {
  // Launches are serialised: shared-memory variables are one instance per kernel.
  std::lock_guard<std::mutex> launch_lock(launch_mutex());
  EmulatorInternal internal;  // the scheduler's accesses are the emulator's, not device code's
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
  if (num_threads % kWarpSize != 0) {
    // The device code's collectives use full warp masks: a partial last warp would be a bug there.
    throw std::runtime_error("batchgan CUDA emulator: a block of " + std::to_string(num_threads) +
                             " threads; block sizes must be multiples of the warp size (32)");
  }
  ScheduleState& schedule = schedule_state();
  ScheduleRng rng(schedule.seed * 0x2545f4914f6cdd1dull + (++schedule.launches));
  std::vector<FiberStack*>& all = fiber_stacks(num_threads);
  BlockState state(static_cast<int>(num_threads), std::vector<FiberStack*>(all.begin(), all.begin() + num_threads),
                   [&] { kernel(args...); });
  const ThreadContext saved = current;
  const dim3 saved_idx[4] = {threadIdx, blockIdx, blockDim, gridDim};
  current.block = &state;
  blockDim = block;
  gridDim = grid;
  const BlockOrder order(num_blocks, rng);
  for (uint64_t k = 0; k < num_blocks && !state.aborted(); ++k) {
    const uint64_t b = order[k];
    blockIdx = dim3(static_cast<unsigned>(b % grid.x), static_cast<unsigned>((b / grid.x) % grid.y),
                    static_cast<unsigned>(b / (uint64_t(grid.x) * grid.y)));
    tsan_release(&state.block_begin_sync);
    state.run_block(block, rng);
    tsan_acquire(&state.block_end_sync);
  }
  current = saved;
  threadIdx = saved_idx[0];
  blockIdx = saved_idx[1];
  blockDim = saved_idx[2];
  gridDim = saved_idx[3];
  if (state.aborted()) {
    throw std::runtime_error(state.device_check_failed() ? state.error() : "batchgan CUDA emulator: " + state.error());
  }
}

}  // namespace emu
}  // namespace batchgan

#define __syncthreads() ::batchgan::emu::syncthreads_at(__FILE__, __LINE__)

// A shared-memory variable of the block (device_api.h's BATCHGAN_SHARED): one static instance,
// filled with 0xFF bytes (NaN) when the first thread of each block declares it.
#define BATCHGAN_SHARED(type, name, ...) \
  static type name __VA_ARGS__;          \
  ::batchgan::emu::fresh_shared(&name, sizeof(name))

// atomicAdd on host memory, with CUDA's signature (returns the old value).
template <typename T>
inline T atomicAdd(T* address, T value) {
  static_assert(std::is_arithmetic<T>::value, "atomicAdd: arithmetic types only");
  return std::atomic_ref<T>(*address).fetch_add(value);
}
