// Qualifiers shared by the CPU kernels, the CUDA kernels and the CPU emulator of the CUDA
// execution model. One spelling for all three builds, in the spirit of torchvision's
// box_iou_rotated_utils.h: math written once in a BATCHGAN_HOST_DEVICE_INLINE function is
// compiled by g++ for the CPU kernel and for the emulator, and by nvcc for the GPU.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define BATCHGAN_HOST_DEVICE __host__ __device__
#define BATCHGAN_HOST_DEVICE_INLINE __host__ __device__ __forceinline__
#else
#define BATCHGAN_HOST_DEVICE
#define BATCHGAN_HOST_DEVICE_INLINE inline
#endif
