// Registration of an op's kernels on a torch::Library, shared by the ops' <op>_register.h
// templates: the same wrappers serve the CPU and CUDA backends of batchgan:: and the emulated
// CUDA kernels that the tests call under batchgan_emulated::.
#pragma once

#include <c10/core/Device.h>
#include <torch/library.h>

#include <cstring>
#include <string>

namespace batchgan {

// kImpl: kernels for the ops batchgan defines (in TORCH_LIBRARY_IMPL(batchgan, CPU/CUDA, m)).
// kDefine: each op defined anew with its schema (in TORCH_LIBRARY_FRAGMENT(batchgan_emulated, m)).
enum class Registration { kImpl, kDefine };

// Registers `fn` for the op whose schema is `schema` ("name(args) -> result").
template <typename Fn>
void register_kernel(torch::Library& m, Registration how, const char* schema, Fn* fn) {
  if (how == Registration::kDefine) {
    m.def(schema, fn);
  } else {
    m.impl(std::string(schema, std::strchr(schema, '(')).c_str(), fn);
  }
}

// Registers Kernels::forward for the op of `schema` and Kernels::backward for its helper op.
template <typename Kernels>
void register_forward_backward(torch::Library& m, Registration how, const char* schema, const char* backward_schema) {
  register_kernel(m, how, schema, &Kernels::forward);
  register_kernel(m, how, backward_schema, &Kernels::backward);
}

// The device guard of the backends that have no current device to set (CPU, the emulator).
struct NoDeviceGuard {
  explicit NoDeviceGuard(c10::Device) {}
};

}  // namespace batchgan
