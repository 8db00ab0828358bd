// CUDA kernels of PrRoIPool: forward and feature gradient with one thread per
// output element (roi, channel, bin), the RoI-coordinate gradient with one
// block per slice of a RoI's elements; the per-bin math from
// prroi_pool_utils.h. float, double, half and bfloat16; sums and gradients
// accumulate in the op-math type (float for the 16-bit types), gradients
// through atomics into op-math buffers.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/Atomic.cuh>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>

#include "prroi_pool_checks.h"
#include "prroi_pool_cuda_bin.cuh"
#include "prroi_pool_cuda_roi_sum.cuh"
#include "prroi_pool_utils.h"

namespace gan_mask_rcnn {
namespace {

constexpr int kThreads = 256;

int num_blocks(int64_t n) {
  return static_cast<int>(
      std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t(1) << 20));
}

template <typename scalar_t, typename T>
__global__ void forward_kernel(int64_t total, const scalar_t* features,
                               const scalar_t* rois, scalar_t* output, T scale,
                               int64_t batch_size, int channels, int height,
                               int width, int pooled_h, int pooled_w) {
  for (int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
       index < total; index += int64_t(blockDim.x) * gridDim.x) {
    const Bin<T> bin(index, rois, scale, channels, pooled_h, pooled_w,
                     batch_size);
    if (bin.state != kPrRoIValid) {
      output[index] =
          static_cast<scalar_t>(bin.state == kPrRoIEmpty ? T(0) : T(NAN));
      continue;
    }
    const scalar_t* plane =
        features + (bin.batch * channels + bin.c) * height * width;
    output[index] = static_cast<scalar_t>(prroi_bin_average<T>(
        plane, height, width, bin.x1, bin.y1, bin.x2, bin.y2, bin.bw, bin.bh));
  }
}

// Feature gradient: each element adds its share to the features it covers. A
// zero upstream gradient adds nothing and is skipped (prroi_pool_max_levels
// passes one level's elements, zeros elsewhere).
template <typename scalar_t, typename T>
__global__ void backward_kernel(int64_t total, const scalar_t* grad_output,
                                const scalar_t* rois, T* grad_features,
                                T scale, int64_t batch_size, int channels,
                                int height, int width, int pooled_h,
                                int pooled_w) {
  for (int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
       index < total; index += int64_t(blockDim.x) * gridDim.x) {
    const T upstream = static_cast<T>(grad_output[index]);
    if (upstream == T(0)) continue;
    const Bin<T> bin(index, rois, scale, channels, pooled_h, pooled_w,
                     batch_size);
    if (bin.state != kPrRoIValid) continue;
    const T g = upstream / (bin.bw * bin.bh);
    T* plane = grad_features + (bin.batch * channels + bin.c) * height * width;
    int i_first, i_last, j_first, j_last;
    prroi_axis_range(bin.x1, bin.x2, width, &i_first, &i_last);
    prroi_axis_range(bin.y1, bin.y2, height, &j_first, &j_last);
    for (int j = j_first; j <= j_last; ++j) {
      const T gy = g * prroi_axis_weight(bin.y1, bin.y2, j);
      for (int i = i_first; i <= i_last; ++i)
        gpuAtomicAdd(plane + j * width + i,
                     gy * prroi_axis_weight(bin.x1, bin.x2, i));
    }
  }
}

// Gradient wrt the RoI corners: block b sums the partials of slice
// b % slices of RoI b / slices (prroi_pool_cuda_roi_sum.cuh) into
// grad_rois[k, 0..3] with one atomic per coordinate.
template <typename scalar_t, typename T>
__global__ void coor_backward_kernel(int slices, int per_roi,
                                     const scalar_t* grad_output,
                                     const scalar_t* output,
                                     const scalar_t* features,
                                     const scalar_t* rois, T* grad_rois,
                                     T scale, int64_t batch_size, int channels,
                                     int height, int width, int pooled_h,
                                     int pooled_w) {
  const int64_t k = blockIdx.x / slices;
  const int begin = (blockIdx.x % slices) * kRoiSumSlice;
  const int end = min(begin + kRoiSumSlice, per_roi);
  const scalar_t* roi = rois + k * 5;
  const T b = static_cast<T>(roi[0]);
  const int64_t batch = valid_batch(b, batch_size) ? static_cast<int64_t>(b) : 0;
  const T rx1 = static_cast<T>(roi[1]) * scale;
  const T ry1 = static_cast<T>(roi[2]) * scale;
  T bw, bh;
  const int state =
      valid_batch(b, batch_size)
          ? prroi_roi_bins(rx1, ry1, static_cast<T>(roi[3]) * scale,
                           static_cast<T>(roi[4]) * scale, pooled_h, pooled_w,
                           &bw, &bh)
          : kPrRoINonFinite;
  const PrRoIGeometry<T> geometry =
      prroi_geometry(rx1, ry1, bw, bh, pooled_h, pooled_w);
  T acc[4] = {T(0), T(0), T(0), T(0)};
  for (int e = begin + threadIdx.x; state != kPrRoIEmpty && e < end;
       e += kRoiSumThreads) {
    if (state == kPrRoINonFinite) {
      for (int j = 0; j < 4; ++j) acc[j] += T(NAN);
      continue;
    }
    const int64_t index = k * per_roi + e;
    const T g = static_cast<T>(grad_output[index]);
    if (g == T(0)) continue;  // e.g. a level that lost prroi_pool_max_levels
    add_element_coor_grad(e, features + batch * channels * height * width,
                          height, width, geometry, pooled_h, pooled_w, g,
                          static_cast<T>(output[index]), scale, acc);
  }
  block_sum4_atomic_add(acc, grad_rois + k * 4);
}

#define PRROI_DISPATCH(TYPE, NAME, ...)                            \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half,            \
                                  at::ScalarType::BFloat16, TYPE, NAME, \
                                  __VA_ARGS__)

at::Tensor prroi_pool_cuda(const at::Tensor& features, const at::Tensor& rois,
                           int64_t pooled_height, int64_t pooled_width,
                           double spatial_scale) {
  prroi_check_inputs(features.sizes(), features.options(), rois,
                     pooled_height, pooled_width);
  const c10::cuda::CUDAGuard guard(features.device());
  const auto feat = features.contiguous();
  const auto boxes = rois.contiguous();
  auto output = at::empty(
      {rois.size(0), features.size(1), pooled_height, pooled_width},
      features.options());
  const int64_t total = output.numel();
  if (total == 0) return output;
  check_roi_elements(features.size(1) * pooled_height * pooled_width);
  PRROI_DISPATCH(features.scalar_type(), "prroi_pool_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    forward_kernel<scalar_t, T>
        <<<num_blocks(total), kThreads, 0,
           c10::cuda::getCurrentCUDAStream()>>>(
            total, feat.const_data_ptr<scalar_t>(),
            boxes.const_data_ptr<scalar_t>(),
            output.mutable_data_ptr<scalar_t>(), static_cast<T>(spatial_scale),
            feat.size(0), feat.size(1), feat.size(2), feat.size(3),
            pooled_height, pooled_width);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output;
}

at::Tensor prroi_pool_backward_cuda(const at::Tensor& grad_output,
                                    const at::Tensor& rois,
                                    at::IntArrayRef features_shape,
                                    int64_t pooled_height,
                                    int64_t pooled_width,
                                    double spatial_scale) {
  prroi_check_inputs(features_shape, grad_output.options(), rois,
                     pooled_height, pooled_width);
  prroi_check_pooled(grad_output, "grad_output", features_shape,
                     grad_output.options(), rois, pooled_height, pooled_width);
  const c10::cuda::CUDAGuard guard(grad_output.device());
  const auto acc_type = at::toOpMathType(grad_output.scalar_type());
  auto grad_features =
      at::zeros(features_shape, grad_output.options().dtype(acc_type));
  const auto grad = grad_output.contiguous();
  const auto boxes = rois.contiguous();
  const int64_t total = grad.numel();
  if (total > 0) {
    check_roi_elements(features_shape[1] * pooled_height * pooled_width);
    PRROI_DISPATCH(grad.scalar_type(), "prroi_pool_backward_cuda", [&] {
      using T = at::opmath_type<scalar_t>;
      backward_kernel<scalar_t, T>
          <<<num_blocks(total), kThreads, 0,
             c10::cuda::getCurrentCUDAStream()>>>(
              total, grad.const_data_ptr<scalar_t>(),
              boxes.const_data_ptr<scalar_t>(),
              grad_features.mutable_data_ptr<T>(),
              static_cast<T>(spatial_scale), features_shape[0],
              features_shape[1], features_shape[2], features_shape[3],
              pooled_height, pooled_width);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return grad_features.to(grad_output.scalar_type());
}

at::Tensor prroi_pool_coor_backward_cuda(const at::Tensor& grad_output,
                                         const at::Tensor& output,
                                         const at::Tensor& features,
                                         const at::Tensor& rois,
                                         int64_t pooled_height,
                                         int64_t pooled_width,
                                         double spatial_scale) {
  prroi_check_inputs(features.sizes(), features.options(), rois,
                     pooled_height, pooled_width);
  prroi_check_pooled(grad_output, "grad_output", features.sizes(),
                     features.options(), rois, pooled_height, pooled_width);
  prroi_check_pooled(output, "output", features.sizes(), features.options(),
                     rois, pooled_height, pooled_width);
  const c10::cuda::CUDAGuard guard(features.device());
  const auto acc_type = at::toOpMathType(features.scalar_type());
  auto grad = at::zeros({rois.size(0), 4}, rois.options().dtype(acc_type));
  const auto grad_out = grad_output.contiguous();
  const auto out = output.contiguous();
  const auto feat = features.contiguous();
  const auto boxes = rois.contiguous();
  const int64_t per_roi = feat.size(1) * pooled_height * pooled_width;
  if (grad_out.numel() > 0) {
    const RoiSlices launch(rois.size(0), per_roi);
    PRROI_DISPATCH(feat.scalar_type(), "prroi_pool_coor_backward_cuda", [&] {
      using T = at::opmath_type<scalar_t>;
      coor_backward_kernel<scalar_t, T>
          <<<launch.blocks, kRoiSumThreads, 0,
             c10::cuda::getCurrentCUDAStream()>>>(
              launch.slices, per_roi, grad_out.const_data_ptr<scalar_t>(),
              out.const_data_ptr<scalar_t>(), feat.const_data_ptr<scalar_t>(),
              boxes.const_data_ptr<scalar_t>(), grad.mutable_data_ptr<T>(),
              static_cast<T>(spatial_scale), feat.size(0), feat.size(1),
              feat.size(2), feat.size(3), pooled_height, pooled_width);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  auto grad_rois = at::zeros_like(rois, at::MemoryFormat::Contiguous);
  grad_rois.narrow(1, 1, 4).copy_(grad);
  return grad_rois;
}

}  // namespace

TORCH_LIBRARY_IMPL(gan_mask_rcnn, CUDA, m) {
  m.impl("prroi_pool", &prroi_pool_cuda);
  m.impl("prroi_pool_backward", &prroi_pool_backward_cuda);
  m.impl("prroi_pool_coor_backward", &prroi_pool_coor_backward_cuda);
}

}  // namespace gan_mask_rcnn
