// Argument checks shared by every op. Each error names the argument and what was expected,
// the way torchvision's ops do, so bad input is a clear Python RuntimeError, never a crash.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/_assert_async.h>
#include <c10/util/Exception.h>

namespace batchgan {

inline bool is_supported_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

inline void check_float_tensor(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.defined(), name, ": expected a tensor, got None");
  TORCH_CHECK(is_supported_float(t.scalar_type()), name,
              ": expected a float32, float64, float16 or bfloat16 tensor, got ", t.scalar_type());
}

inline void check_same_device(const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name) {
  TORCH_CHECK(a.device() == b.device(), b_name, ": expected a tensor on the same device as ", a_name, " (", a.device(),
              "), got one on ", b.device());
}

inline void check_device_type(const at::Tensor& t, const char* name, c10::DeviceType expected) {
  TORCH_CHECK(t.device().type() == expected, name, ": expected a ", c10::DeviceTypeName(expected),
              " tensor, got one on ", t.device());
}

// A batch of `batch` samples cut into num_sets sets of batch / num_sets consecutive samples.
inline void check_num_sets(int64_t batch, int64_t num_sets) {
  TORCH_CHECK(num_sets >= 1, "num_sets: expected a positive number of sets, got ", num_sets);
  TORCH_CHECK(batch % num_sets == 0, "num_sets: the batch of ", batch, " samples does not split into ", num_sets,
              " equal sets");
}

// A check on values that live on the tensor's device, without waiting for the device: `ok` is a
// one-element bool tensor computed there. CPU tensors (the CPU and emulated kernels) raise at once
// with `message`; on CUDA torch's asynchronous assert is queued on the stream before the op's
// kernels, so the host never stalls (no .item()) and the op stays capturable in a CUDA graph; a
// false value stops the device with a device-side assert at the next synchronisation.
inline void check_on_device(const at::Tensor& ok, const char* message) { at::_assert_async(ok, message); }

}  // namespace batchgan
