// CUDA kernels of prroi_pool_max_levels. Forward: one thread per output element
// (roi, channel, bin) pools the bin on every level (per-bin math of
// prroi_pool_utils.h) and keeps the maximum and its level, as torch.maximum
// would merge them (NaN wins and stays, ties keep the first level). RoI
// gradient: one block per slice of a RoI's elements
// (prroi_pool_cuda_roi_sum.cuh). The level pointers and scales travel by value
// in a fixed-size struct (up to kMaxLevels levels, more than any FPN has).
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/Atomic.cuh>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "prroi_pool_checks.h"
#include "prroi_pool_cuda_bin.cuh"
#include "prroi_pool_cuda_roi_sum.cuh"
#include "prroi_pool_utils.h"

namespace gan_mask_rcnn {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxLevels = 8;

template <typename scalar_t, typename T>
struct Levels {
  const scalar_t* data[kMaxLevels];
  int height[kMaxLevels], width[kMaxLevels];
  T scale[kMaxLevels];
  int count;
};

template <typename scalar_t, typename T>
__global__ void max_levels_kernel(int64_t total, Levels<scalar_t, T> levels,
                                  const scalar_t* rois, scalar_t* output,
                                  uint8_t* level_index, int64_t batch_size,
                                  int channels, int pooled_h, int pooled_w) {
  for (int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
       index < total; index += int64_t(blockDim.x) * gridDim.x) {
    T best = T(0);
    uint8_t best_level = 0;
    for (int l = 0; l < levels.count; ++l) {
      const Bin<T> bin(index, rois, levels.scale[l], channels, pooled_h,
                       pooled_w, batch_size);
      T v;
      if (bin.state != kPrRoIValid) {
        v = bin.state == kPrRoIEmpty ? T(0) : T(NAN);
      } else {
        const int h = levels.height[l], w = levels.width[l];
        v = prroi_bin_average<T>(
            levels.data[l] + (bin.batch * channels + bin.c) * h * w, h, w,
            bin.x1, bin.y1, bin.x2, bin.y2, bin.bw, bin.bh);
      }
      if (l == 0 || (!isnan(best) && (v > best || isnan(v)))) {
        best = v;
        best_level = static_cast<uint8_t>(l);
      }
    }
    output[index] = static_cast<scalar_t>(best);
    level_index[index] = best_level;
  }
}

// Gradient wrt the RoI corners: each element adds the coordinate gradient of
// the bin on the level it came from. Block b sums the partials of slice
// b % slices of RoI b / slices (prroi_pool_cuda_roi_sum.cuh) into
// grad_rois[k, 0..3] with one atomic per coordinate.
template <typename scalar_t, typename T>
__global__ void max_levels_coor_kernel(int slices, int per_roi,
                                       Levels<scalar_t, T> levels,
                                       const scalar_t* grad_output,
                                       const scalar_t* output,
                                       const uint8_t* level_index,
                                       const scalar_t* rois, T* grad_rois,
                                       int64_t batch_size, int channels,
                                       int pooled_h, int pooled_w) {
  const int64_t k = blockIdx.x / slices;
  const int begin = (blockIdx.x % slices) * kRoiSumSlice;
  const int end = min(begin + kRoiSumSlice, per_roi);
  // the RoI on each level, once per block: its state and reciprocals
  __shared__ PrRoIGeometry<T> geometry[kMaxLevels];
  __shared__ int state[kMaxLevels];
  if (threadIdx.x < levels.count) {
    const int l = threadIdx.x;
    const scalar_t* roi = rois + k * 5;
    const T scale = levels.scale[l];
    const T rx1 = static_cast<T>(roi[1]) * scale;
    const T ry1 = static_cast<T>(roi[2]) * scale;
    T bw = T(0), bh = T(0);
    state[l] = valid_batch(static_cast<T>(roi[0]), batch_size)
                   ? prroi_roi_bins(rx1, ry1, static_cast<T>(roi[3]) * scale,
                                    static_cast<T>(roi[4]) * scale, pooled_h,
                                    pooled_w, &bw, &bh)
                   : kPrRoINonFinite;
    geometry[l] = prroi_geometry(rx1, ry1, bw, bh, pooled_h, pooled_w);
  }
  __syncthreads();
  const int64_t batch =
      state[0] == kPrRoINonFinite ? 0 : static_cast<int64_t>(static_cast<T>(rois[k * 5]));
  T acc[4] = {T(0), T(0), T(0), T(0)};
  for (int e = begin + threadIdx.x; e < end; e += kRoiSumThreads) {
    const int64_t index = k * per_roi + e;
    const int l = level_index[index];
    if (state[l] == kPrRoINonFinite) {
      for (int j = 0; j < 4; ++j) acc[j] += T(NAN);
      continue;
    }
    const T g = static_cast<T>(grad_output[index]);
    if (state[l] == kPrRoIEmpty || g == T(0)) continue;
    const int h = levels.height[l], w = levels.width[l];
    add_element_coor_grad(e, levels.data[l] + batch * channels * h * w, h, w,
                          geometry[l], pooled_h, pooled_w, g,
                          static_cast<T>(output[index]), levels.scale[l], acc);
  }
  block_sum4_atomic_add(acc, grad_rois + k * 4);
}

template <typename scalar_t, typename T>
Levels<scalar_t, T> make_levels(const std::vector<at::Tensor>& feats,
                                at::ArrayRef<double> spatial_scales) {
  Levels<scalar_t, T> levels;
  levels.count = static_cast<int>(feats.size());
  for (int l = 0; l < levels.count; ++l) {
    levels.data[l] = feats[l].const_data_ptr<scalar_t>();
    levels.height[l] = feats[l].size(2);
    levels.width[l] = feats[l].size(3);
    levels.scale[l] = static_cast<T>(spatial_scales[l]);
  }
  return levels;
}

int num_blocks(int64_t n) {
  return static_cast<int>(
      std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t(1) << 20));
}

std::vector<at::Tensor> checked_levels(at::TensorList features,
                                       const at::Tensor& rois,
                                       int64_t pooled_height,
                                       int64_t pooled_width,
                                       at::ArrayRef<double> spatial_scales) {
  prroi_check_levels(features, rois, pooled_height, pooled_width,
                     spatial_scales);
  TORCH_CHECK(static_cast<int>(features.size()) <= kMaxLevels,
              "prroi_pool_max_levels: the CUDA kernel takes at most ",
              kMaxLevels, " levels, got ", features.size());
  std::vector<at::Tensor> feats;
  for (const auto& f : features) feats.push_back(f.contiguous());
  return feats;
}

std::tuple<at::Tensor, at::Tensor> prroi_pool_max_levels_cuda(
    at::TensorList features, const at::Tensor& rois, int64_t pooled_height,
    int64_t pooled_width, at::ArrayRef<double> spatial_scales) {
  const auto feats = checked_levels(features, rois, pooled_height,
                                    pooled_width, spatial_scales);
  const c10::cuda::CUDAGuard guard(rois.device());
  const auto boxes = rois.contiguous();
  auto output = at::empty(
      {rois.size(0), features[0].size(1), pooled_height, pooled_width},
      features[0].options());
  auto level = at::empty(output.sizes(), output.options().dtype(at::kByte));
  const int64_t total = output.numel();
  if (total == 0) return {output, level};
  check_roi_elements(features[0].size(1) * pooled_height * pooled_width);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::ScalarType::Half, at::ScalarType::BFloat16,
      features[0].scalar_type(), "prroi_pool_max_levels_cuda", [&] {
        using T = at::opmath_type<scalar_t>;
        max_levels_kernel<scalar_t, T>
            <<<num_blocks(total), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
                total, make_levels<scalar_t, T>(feats, spatial_scales),
                boxes.const_data_ptr<scalar_t>(),
                output.mutable_data_ptr<scalar_t>(),
                level.mutable_data_ptr<uint8_t>(), feats[0].size(0),
                feats[0].size(1), pooled_height, pooled_width);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return {output, level};
}

at::Tensor prroi_pool_max_levels_coor_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& output,
    const at::Tensor& level, at::TensorList features, const at::Tensor& rois,
    int64_t pooled_height, int64_t pooled_width,
    at::ArrayRef<double> spatial_scales) {
  const auto feats = checked_levels(features, rois, pooled_height,
                                    pooled_width, spatial_scales);
  prroi_check_pooled(grad_output, "grad_output", features[0].sizes(),
                     features[0].options(), rois, pooled_height, pooled_width);
  prroi_check_pooled(output, "output", features[0].sizes(),
                     features[0].options(), rois, pooled_height, pooled_width);
  TORCH_CHECK(level.sizes() == output.sizes() && level.scalar_type() == at::kByte &&
                  level.device() == output.device(),
              "prroi_pool_max_levels: level must be uint8 of the output's shape ",
              output.sizes(), ", got ", level.scalar_type(), " ", level.sizes());
  const c10::cuda::CUDAGuard guard(rois.device());
  const auto acc_type = at::toOpMathType(features[0].scalar_type());
  auto grad = at::zeros({rois.size(0), 4}, rois.options().dtype(acc_type));
  const auto grad_out = grad_output.contiguous();
  const auto out = output.contiguous();
  const auto lvl = level.contiguous();
  const auto boxes = rois.contiguous();
  const int64_t per_roi = feats[0].size(1) * pooled_height * pooled_width;
  if (grad_out.numel() > 0) {
    const RoiSlices launch(rois.size(0), per_roi);
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::ScalarType::Half, at::ScalarType::BFloat16,
        features[0].scalar_type(), "prroi_pool_max_levels_coor_backward_cuda",
        [&] {
          using T = at::opmath_type<scalar_t>;
          max_levels_coor_kernel<scalar_t, T>
              <<<launch.blocks, kRoiSumThreads, 0,
                 c10::cuda::getCurrentCUDAStream()>>>(
                  launch.slices, per_roi,
                  make_levels<scalar_t, T>(feats, spatial_scales),
                  grad_out.const_data_ptr<scalar_t>(),
                  out.const_data_ptr<scalar_t>(),
                  lvl.const_data_ptr<uint8_t>(),
                  boxes.const_data_ptr<scalar_t>(), grad.mutable_data_ptr<T>(),
                  feats[0].size(0), feats[0].size(1), pooled_height,
                  pooled_width);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  }
  auto grad_rois = at::zeros_like(rois, at::MemoryFormat::Contiguous);
  grad_rois.narrow(1, 1, 4).copy_(grad);
  return grad_rois;
}

}  // namespace

TORCH_LIBRARY_IMPL(gan_mask_rcnn, CUDA, m) {
  m.impl("prroi_pool_max_levels", &prroi_pool_max_levels_cuda);
  m.impl("prroi_pool_max_levels_coor_backward",
         &prroi_pool_max_levels_coor_backward_cuda);
}

}  // namespace gan_mask_rcnn
