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
  m.def("_selftest_shared_read_unwritten", &batchgan::emulator_selftest::shared_read_unwritten, py::arg("blocks"),
        py::arg("threads"), py::arg("written"));
  m.def("_selftest_schedule_trace", &batchgan::emulator_selftest::schedule_trace, py::arg("blocks"),
        py::arg("threads"));
  m.def("_selftest_race", &batchgan::emulator_selftest::run_race, py::arg("which"), py::arg("values"),
        py::arg("threads"));
  // The schedule and the mutation switch (device/cuda_emulator.h).
  m.def("_set_schedule_seed", &batchgan::emu::set_schedule_seed, py::arg("seed"),
        "Seed of the block, warp and lane orders of every later launch (also BATCHGAN_EMULATOR_SEED).");
  m.def("_schedule_seed", &batchgan::emu::schedule_seed);
  m.def("_barrier_sites", &batchgan::emu::barrier_sites,
        "The __syncthreads() call sites run so far in this process, as '<file name>:<line>'.");
  m.def("_disable_barrier", &batchgan::emu::disable_barrier, py::arg("site"),
        "Switch one __syncthreads() call site off ('<file name>:<line>'; '' switches all on again).");
  m.def("_disabled_barrier", &batchgan::emu::disabled_barrier);
}
