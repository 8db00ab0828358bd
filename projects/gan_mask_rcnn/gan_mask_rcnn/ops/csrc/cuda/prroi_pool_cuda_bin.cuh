// Location and geometry of one output bin, shared by the CUDA PrRoIPool
// kernels (prroi_pool_cuda.cu, prroi_pool_max_levels_cuda.cu).
#ifndef PRROI_POOL_CUDA_BIN_CUH
#define PRROI_POOL_CUDA_BIN_CUH

#include <cstdint>

#include "prroi_pool_utils.h"

namespace gan_mask_rcnn {

// Location of output element `index` of a (K, C, PH, PW) tensor and its bin.
template <typename T>
struct Bin {
  int64_t k, c, batch;
  int ph, pw, state;
  T x1, y1, x2, y2, bw, bh;

  template <typename scalar_t>
  __device__ Bin(int64_t index, const scalar_t* rois, T scale, int channels,
                 int pooled_h, int pooled_w) {
    pw = index % pooled_w;
    ph = (index / pooled_w) % pooled_h;
    c = (index / pooled_w / pooled_h) % channels;
    k = index / pooled_w / pooled_h / channels;
    const scalar_t* roi = rois + k * 5;
    batch = static_cast<int64_t>(static_cast<T>(roi[0]));
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
