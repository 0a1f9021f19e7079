/**
 * @file peft_kernels.h
 * @brief Forward and backward kernels of the trainable part.
 *
 * Conventions (shared by every kernel):
 * - Activations are float32, batch 1, NHWC without the N: index (y * w + x) * c + ch.
 * - Frozen weights are int8, symmetric (zero point 0), read in place from the
 *   .tflite with their scales: w = data[i] * scales[oc] (scale_count == out
 *   channels) or data[i] * scales[0] (scale_count == 1). Trainable weights are
 *   float32 in the same layout.
 * - Weight layouts are TFLite's: CONV_2D [out_c][kh][kw][in_c];
 *   DEPTHWISE_CONV_2D [kh][kw][c] (depth multiplier 1); FULLY_CONNECTED
 *   [out][in].
 * - `_fwd_` writes its output. `_bwd_input_` writes the input gradient, or adds
 *   to it when `accumulate` is true (a tensor with several consumers).
 *   `_bwd_weight_` and `_bwd_bias_` always ADD into the gradient buffer, so
 *   that gradients accumulate over a batch; the caller zeroes them.
 * - No kernel needs scratch memory; none allocates. Every kernel checks its
 *   arguments (NULL, non-positive dims, dims inconsistent with the geometry)
 *   and returns PEFT_ERR_ARG without touching memory when they are wrong.
 * - `bias` may be NULL in every `_fwd_` kernel (no bias: LoRA factors, TFLite
 *   layers without one).
 * - Reference loops accumulate in float32; an `_s8` forward sums data * x per
 *   output channel and multiplies by that channel's scale once.
 * - Fused activations and per-channel affine terms are separate kernels
 *   (peft_activation_*, peft_scale_shift_*), so every method reuses them.
 */
#ifndef PEFT_KERNELS_H
#define PEFT_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "peft/peft_formats.h"
#include "peft/peft_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup peft_kernels Kernels
 * @{
 */

/* peft_activation (PEFT_ACT_NONE, _RELU, _RELU6): peft/peft_formats.h. */

/** Shape of one activation tensor (batch 1, NHWC). A vector of n is {1, 1, n}. */
typedef struct {
	int32_t h;
	int32_t w;
	int32_t c;
} peft_dims;

/** Frozen int8 weights and their symmetric scales, read in place. */
typedef struct {
	const int8_t *data;
	const float *scales;
	int32_t scale_count; /**< 1 (per tensor) or the number of output channels. */
} peft_weights_s8;

/**
 * Geometry of CONV_2D, DEPTHWISE_CONV_2D and AVERAGE_POOL_2D.
 * Padding is explicit: pad_top/pad_left are the leading zero rows/columns (the
 * planner derives them from SAME/VALID); the trailing padding follows from
 * in/out dims. The kernel checks that pad_top >= 0 and that
 * out.h == (in.h + pad_top + pad_bottom - kernel_h) / stride_h + 1 holds for
 * some 0 <= pad_bottom < kernel_h + stride_h (same for w). TF's SAME is
 * total = max((out - 1) * stride + kernel - in, 0), pad_top = total / 2;
 * VALID is pad_top = 0. Depthwise and pooling also need in.c == out.c, and
 * pooling needs every window to cover an input element (pad_top < kernel_h,
 * (out.h - 1) * stride_h - pad_top < in.h; same for w), as SAME/VALID give.
 */
typedef struct {
	peft_dims in;
	peft_dims out;
	int32_t kernel_h;
	int32_t kernel_w;
	int32_t stride_h;
	int32_t stride_w;
	int32_t pad_top;
	int32_t pad_left;
} peft_conv_params;

/** FULLY_CONNECTED over `rows` independent rows (a 1x1 convolution is rows = h * w). */
typedef struct {
	int32_t rows;
	int32_t in_features;
	int32_t out_features;
} peft_fc_params;

/**
 * PAD: zero padding of the spatial dims (channels are never padded). The
 * trailing pads are out - in - leading pads and must not be negative.
 */
typedef struct {
	peft_dims in;
	peft_dims out;
	int32_t pad_top;
	int32_t pad_left;
} peft_pad_params;

/* ---- CONV_2D ---- */
peft_status peft_conv2d_fwd_s8(const peft_conv_params *p, const float *in, const peft_weights_s8 *w,
			       const float *bias, float *out);
peft_status peft_conv2d_fwd_f32(const peft_conv_params *p, const float *in, const float *w,
				const float *bias, float *out);
peft_status peft_conv2d_bwd_input_s8(const peft_conv_params *p, const peft_weights_s8 *w,
				     const float *grad_out, float *grad_in, bool accumulate);
peft_status peft_conv2d_bwd_input_f32(const peft_conv_params *p, const float *w,
				      const float *grad_out, float *grad_in, bool accumulate);
peft_status peft_conv2d_bwd_weight_f32(const peft_conv_params *p, const float *in,
				       const float *grad_out, float *grad_w);
peft_status peft_conv2d_bwd_bias_f32(const peft_dims *out, const float *grad_out, float *grad_bias);

/* ---- DEPTHWISE_CONV_2D (depth multiplier 1: in.c == out.c) ---- */
peft_status peft_depthwise_conv2d_fwd_s8(const peft_conv_params *p, const float *in,
					 const peft_weights_s8 *w, const float *bias, float *out);
peft_status peft_depthwise_conv2d_fwd_f32(const peft_conv_params *p, const float *in,
					  const float *w, const float *bias, float *out);
peft_status peft_depthwise_conv2d_bwd_input_s8(const peft_conv_params *p, const peft_weights_s8 *w,
					       const float *grad_out, float *grad_in,
					       bool accumulate);
peft_status peft_depthwise_conv2d_bwd_input_f32(const peft_conv_params *p, const float *w,
						const float *grad_out, float *grad_in,
						bool accumulate);
peft_status peft_depthwise_conv2d_bwd_weight_f32(const peft_conv_params *p, const float *in,
						 const float *grad_out, float *grad_w);
peft_status peft_depthwise_conv2d_bwd_bias_f32(const peft_dims *out, const float *grad_out,
					       float *grad_bias);

/* ---- FULLY_CONNECTED (also 1x1 convolutions and LoRA factors) ---- */
peft_status peft_fc_fwd_s8(const peft_fc_params *p, const float *in, const peft_weights_s8 *w,
			   const float *bias, float *out);
peft_status peft_fc_fwd_f32(const peft_fc_params *p, const float *in, const float *w,
			    const float *bias, float *out);
peft_status peft_fc_bwd_input_s8(const peft_fc_params *p, const peft_weights_s8 *w,
				 const float *grad_out, float *grad_in, bool accumulate);
peft_status peft_fc_bwd_input_f32(const peft_fc_params *p, const float *w, const float *grad_out,
				  float *grad_in, bool accumulate);
peft_status peft_fc_bwd_weight_f32(const peft_fc_params *p, const float *in, const float *grad_out,
				   float *grad_w);

/**
 * The int8 path of the input gradient through frozen int8 weights
 * (MCUNetV3/TinyEngine style): each row of h = grad_out * (weight scale of its
 * output feature) is quantized symmetrically to int16 values in [-127, 127]
 * with its own scale s_r = max|h_r| / 127 (halves away from zero), the
 * products with the int8 weights are summed exactly in int32, and
 * grad_in[r][i] = s_r * sum over o of w[o][i] * q_r[o] (a zero row gives 0).
 * Every backend gives identical results (exact integer sums); on a core with
 * the DSP extension the optimized backend uses SMLAD. `scratch` (4-byte
 * aligned) holds quantized rows and widened weights: scratch_bytes >=
 * peft_fc_bwd_input_s8s8_get_buffer_size(p), the same in every backend.
 */
int32_t peft_fc_bwd_input_s8s8_get_buffer_size(const peft_fc_params *p);
peft_status peft_fc_bwd_input_s8s8(const peft_fc_params *p, const peft_weights_s8 *w,
				   const float *grad_out, float *grad_in, bool accumulate,
				   int16_t *scratch, int32_t scratch_bytes);
peft_status peft_fc_bwd_bias_f32(const peft_fc_params *p, const float *grad_out, float *grad_bias);

/* ---- ADD (residual): out = a + b; both inputs get grad_out ---- */
peft_status peft_add_fwd_f32(int32_t n, const float *a, const float *b, float *out);
peft_status peft_add_bwd_input_f32(int32_t n, const float *grad_out, float *grad_in,
				   bool accumulate);

/* ---- MEAN over H and W (global average pooling): out has in.c elements ---- */
peft_status peft_mean_fwd_f32(const peft_dims *in, const float *x, float *out);
peft_status peft_mean_bwd_input_f32(const peft_dims *in, const float *grad_out, float *grad_in,
				    bool accumulate);

/* ---- AVERAGE_POOL_2D: divides by the number of non-padding elements (TFLite) ---- */
peft_status peft_avg_pool2d_fwd_f32(const peft_conv_params *p, const float *in, float *out);
peft_status peft_avg_pool2d_bwd_input_f32(const peft_conv_params *p, const float *grad_out,
					  float *grad_in, bool accumulate);

/* ---- PAD (zeros) ---- */
peft_status peft_pad_fwd_f32(const peft_pad_params *p, const float *in, float *out);
peft_status peft_pad_bwd_input_f32(const peft_pad_params *p, const float *grad_out, float *grad_in,
				   bool accumulate);

/* RESHAPE needs no kernel: batch-1 NHWC data is contiguous, so the runtime
 * aliases (or copies) the buffer unchanged in both directions. */

/* ---- Fused activation, in place: x = act(x); grad *= act'(y) using the forward output y ---- */
peft_status peft_activation_fwd_f32(peft_activation act, int32_t n, float *x);
peft_status peft_activation_bwd_f32(peft_activation act, int32_t n, const float *y, float *grad);

/* ---- Per-channel scale and shift: out[i, c] = in[i, c] * gamma[c] + beta[c] over `pixels` rows
 * ---- */
peft_status peft_scale_shift_fwd_f32(int32_t pixels, int32_t channels, const float *in,
				     const float *gamma, const float *beta, float *out);
peft_status peft_scale_shift_bwd_input_f32(int32_t pixels, int32_t channels, const float *gamma,
					   const float *grad_out, float *grad_in, bool accumulate);
/* grad_gamma[c] += sum over rows of grad_out * in, grad_beta[c] += sum over rows
 * of grad_out; grad_beta NULL: only grad_gamma (IA3's scaling vector). */
peft_status peft_scale_shift_bwd_param_f32(int32_t pixels, int32_t channels, const float *in,
					   const float *grad_out, float *grad_gamma,
					   float *grad_beta);

/* ---- SOFTMAX with cross-entropy loss (natural log), numerically stable ----
 * fwd writes probs and loss = -log(probs[label]) (0 <= label < n), and returns
 * PEFT_ERR_NUMERIC (outputs written) when the loss is not finite. */
peft_status peft_softmax_xent_fwd_f32(int32_t n, const float *logits, int32_t label, float *probs,
				      float *loss);
/** grad_logits = probs - onehot(label) (overwrites). */
peft_status peft_softmax_xent_bwd_f32(int32_t n, const float *probs, int32_t label,
				      float *grad_logits);

/* ---- int8 <-> float32 with affine quantization: real = scale * (q - zero_point) ----
 * As TFLite: q = round(x / scale) + zero_point, halves away from zero, clamped
 * to [-128, 127]. scale must be finite and > 0, zero_point in [-128, 127];
 * quantize returns PEFT_ERR_NUMERIC, writing nothing, if an input is NaN. */
peft_status peft_quantize_s8(int32_t n, const float *in, float scale, int32_t zero_point,
			     int8_t *out);
peft_status peft_dequantize_s8(int32_t n, const int8_t *in, float scale, int32_t zero_point,
			       float *out);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* PEFT_KERNELS_H */
