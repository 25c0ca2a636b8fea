// batchgan::_build_info(): which backends this library was compiled with, and the limits of its
// kernels that Python checks too (max_populations), as JSON, so that Python
// (batchgan_ext.build_info(), batchgan_ext/ops/_common.py) and a CMake-built library can report them.
#include <torch/library.h>
#include <torch/version.h>

#include <string>

#include "ops/pairwise_l1_features/pairwise_l1_features_math.h"

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
         "\", \"torch_version\": \"" + std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
         "." + std::to_string(TORCH_VERSION_PATCH) +
         "\", \"max_populations\": " + std::to_string(kPairwiseMaxPopulations) + "}";
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(batchgan, m) { m.def("_build_info() -> str", &build_info); }

}  // namespace batchgan
