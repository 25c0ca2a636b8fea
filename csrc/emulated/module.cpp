// batchgan_ext._emulated: every CUDA kernel of the project compiled by the host compiler
// against the CPU emulator (device/cuda_emulator.h). Loading the module registers them as
// torch.ops.batchgan_emulated.* (each op's cuda/*_emulated.cpp), which the tests compare with
// the CPU kernels; launches go through the same host launchers and launch configurations as
// the real CUDA build. The module's own functions test the emulator itself.
#include <torch/extension.h>

#include "device/emulator_selftest_kernels.h"

PYBIND11_MODULE(_emulated, m) {
  m.doc() = "batchgan CUDA kernels executed by the CPU emulator (for tests)";
  m.def("_selftest_block_sums", &batchgan::emulator_selftest::block_sums, py::arg("values"), py::arg("threads"));
  m.def("_selftest_shared_tile_rotate", &batchgan::emulator_selftest::shared_tile_rotate, py::arg("values"),
        py::arg("threads"));
  m.def("_selftest_misuse", &batchgan::emulator_selftest::run_misuse, py::arg("which"), py::arg("threads"));
}
