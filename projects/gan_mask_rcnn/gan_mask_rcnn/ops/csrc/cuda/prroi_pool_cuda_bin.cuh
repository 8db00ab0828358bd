// Location and geometry of one output bin, shared by the CUDA PrRoIPool
// kernels (prroi_pool_kernel.cu, prroi_pool_max_levels_kernel.cu).
#ifndef PRROI_POOL_CUDA_BIN_CUH
#define PRROI_POOL_CUDA_BIN_CUH

#include <cstdint>

#include "prroi_pool_utils.h"

namespace gan_mask_rcnn {

// Location of output element `index` of a (K, C, PH, PW) tensor and its bin:
// one 64-bit division for the RoI, 32-bit ones within it (C * PH * PW < 2^31,
// checked at launch). A batch index outside [0, batch_size) makes the bin
// kPrRoINonFinite (it pools to NaN), without reading the features.
template <typename T>
struct Bin {
  int64_t k, batch;
  int c, ph, pw, state;
  T x1, y1, x2, y2, bw, bh;

  template <typename scalar_t>
  __device__ Bin(int64_t index, const scalar_t* rois, T scale, int channels,
                 int pooled_h, int pooled_w, int64_t batch_size) {
    const int per_roi = channels * pooled_h * pooled_w;
    k = index / per_roi;
    const int e = static_cast<int>(index - k * per_roi);
    const int plane_bins = pooled_h * pooled_w;
    c = e / plane_bins;
    ph = (e - c * plane_bins) / pooled_w;
    pw = e - c * plane_bins - ph * pooled_w;
    const scalar_t* roi = rois + k * 5;
    const T b = static_cast<T>(roi[0]);
    if (!(b > T(-1) && b < T(batch_size))) {
      state = kPrRoINonFinite;
      return;
    }
    batch = static_cast<int64_t>(b);
    const T rx1 = static_cast<T>(roi[1]) * scale;
    const T ry1 = static_cast<T>(roi[2]) * scale;
    state = prroi_roi_bins(rx1, ry1, static_cast<T>(roi[3]) * scale,
                           static_cast<T>(roi[4]) * scale, pooled_h, pooled_w,
                           &bw, &bh);
    if (state != kPrRoIValid) return;
    prroi_bin_edges(rx1, bw, pw, &x1, &x2);
    prroi_bin_edges(ry1, bh, ph, &y1, &y2);
  }
};

}  // namespace gan_mask_rcnn

#endif  // PRROI_POOL_CUDA_BIN_CUH
