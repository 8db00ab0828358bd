// Launch geometry and block reduction of the CUDA RoI-coordinate backward
// kernels (prroi_pool_kernel.cu, prroi_pool_max_levels_kernel.cu).
//
// Every output element of a RoI adds four partials (x1, y1, x2, y2) to that
// RoI's gradient. One atomic per element and coordinate puts C * PH * PW
// atomics on the same four addresses (200,704 per RoI at 256 x 28 x 28), which
// serialise in L2. Instead each block owns a contiguous slice of one RoI's
// elements: its threads keep their partials in registers, the block sums them
// (warp shuffles, then one warp over the per-warp sums) and thread 0 issues
// one atomic per coordinate.
#ifndef PRROI_POOL_CUDA_ROI_SUM_CUH
#define PRROI_POOL_CUDA_ROI_SUM_CUH

#include <ATen/cuda/Atomic.cuh>
#include <c10/util/Exception.h>

#include <climits>
#include <cstdint>

#include "prroi_pool_utils.h"

namespace gan_mask_rcnn {

constexpr int kRoiSumThreads = 256;        // threads per block (8 warps)
constexpr int kRoiSumItems = 8;            // elements per thread
constexpr int kRoiSumSlice = kRoiSumThreads * kRoiSumItems;

// The kernels index a RoI's C * PH * PW elements with int.
inline void check_roi_elements(int64_t per_roi) {
  TORCH_CHECK(per_roi <= INT_MAX - kRoiSumSlice,
              "prroi_pool: channels * pooled_height * pooled_width must be "
              "below 2^31, got ",
              per_roi);
}

// Blocks per RoI for `per_roi` = C * PH * PW elements, and the grid size
// num_rois * slices; both checked to fit the kernels' int indexing.
struct RoiSlices {
  int slices;
  int64_t blocks;

  RoiSlices(int64_t num_rois, int64_t per_roi) {
    check_roi_elements(per_roi);
    slices = static_cast<int>((per_roi + kRoiSumSlice - 1) / kRoiSumSlice);
    blocks = num_rois * slices;
    TORCH_CHECK(blocks <= INT_MAX,
                "prroi_pool: too many RoIs for one coordinate-backward launch (",
                num_rois, " RoIs of ", per_roi, " elements)");
  }
};

// Adds to acc[0..3] the coordinate gradient g * d(bin average)/d(corner) of
// element e of a RoI's (C, PH, PW) slice: channel e / (PH * PW), bin (ph, pw).
// batch_features: the RoI's image, (C, height, width); roi: the RoI on that map
// with its reciprocals (computed once per block); avg: the element's output.
template <typename T, typename scalar_t>
__device__ __forceinline__ void add_element_coor_grad(
    int e, const scalar_t* batch_features, int height, int width,
    const PrRoIGeometry<T>& roi, int pooled_h, int pooled_w, T g, T avg,
    T scale, T (&acc)[4]) {
  const int plane_bins = pooled_h * pooled_w;
  const int c = e / plane_bins;
  const int ph = (e - c * plane_bins) / pooled_w;
  const int pw = e - c * plane_bins - ph * pooled_w;
  prroi_bin_coor_grad(batch_features + int64_t(c) * height * width, height,
                      width, roi, ph, pw, g, avg, scale, acc);
}

// Whether rois[k, 0] truncates to a batch index in [0, batch_size): checked on
// the device, so a bad index (the Python entry points reject it first) pools to
// NaN and reads no memory, without a host sync.
template <typename T>
__device__ __forceinline__ bool valid_batch(T index, int64_t batch_size) {
  return index > T(-1) && index < T(batch_size);
}

// Sums acc[0..3] over the block and adds the sums to out[0..3] with one
// atomic each. Every thread of the block must call it (it synchronises).
template <typename T>
__device__ __forceinline__ void block_sum4_atomic_add(T (&acc)[4], T* out) {
  constexpr int kWarps = kRoiSumThreads / 32;
  __shared__ T warp_sums[kWarps][4];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
#pragma unroll
  for (int e = 0; e < 4; ++e) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
      acc[e] += __shfl_down_sync(0xffffffffu, acc[e], offset);
  }
  if (lane == 0) {
#pragma unroll
    for (int e = 0; e < 4; ++e) warp_sums[warp][e] = acc[e];
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      T v = lane < kWarps ? warp_sums[lane][e] : T(0);
#pragma unroll
      for (int offset = kWarps / 2; offset > 0; offset >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, offset);
      if (lane == 0) gpuAtomicAdd(out + e, v);
    }
  }
}

}  // namespace gan_mask_rcnn

#endif  // PRROI_POOL_CUDA_ROI_SUM_CUH
