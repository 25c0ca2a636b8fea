// batchgan::_build_info(): which backends this library was compiled with, as JSON, so that
// Python (batchgan_ext.build_info()) and a CMake-built library can both report it.
#include <torch/library.h>
#include <torch/version.h>

#include <string>

#ifndef BATCHGAN_CUDA_VERSION
#define BATCHGAN_CUDA_VERSION ""
#endif

namespace batchgan {
namespace {

std::string build_info() {
  std::string backends = "\"cpu\"";
#ifdef WITH_CUDA
  backends += ", \"cuda\"";
#endif
  return std::string("{\"backends\": [") + backends + "], \"cuda_version\": \"" + BATCHGAN_CUDA_VERSION +
         "\", \"torch_version\": \"" + std::to_string(TORCH_VERSION_MAJOR) + "." +
         std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH) + "\"}";
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(batchgan, m) {
  m.def("_build_info() -> str", &build_info);
}

}  // namespace batchgan
