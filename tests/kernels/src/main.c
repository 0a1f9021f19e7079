/*
 * Kernels (lib/peft/kernels) on the target against TensorFlow: forward by
 * tf.nn, backward by tf.GradientTape (golden_kernels.h, written by
 * `python tools/golden.py`).
 */
#include <string.h>

#include <zephyr/ztest.h>

#include "peft/peft_kernels.h"
#include "peft_ztest.h"

#include "golden_kernels.h"

/* float32 sums in another order than TensorFlow's: a few ulps per term. */
#define ATOL 2e-5f
#define RTOL 1e-4f

static float out[256];
static float grad[256];

static peft_conv_params conv_params(void)
{
	return (peft_conv_params){
		.in = {CONV_IN_H, CONV_IN_W, CONV_IN_C},
		.out = {CONV_OUT_H, CONV_OUT_W, CONV_OUT_C},
		.kernel_h = CONV_K,
		.kernel_w = CONV_K,
		.stride_h = CONV_STRIDE,
		.stride_w = CONV_STRIDE,
		.pad_top = CONV_PAD_TOP,
		.pad_left = CONV_PAD_LEFT,
	};
}

static peft_conv_params dw_params(void)
{
	return (peft_conv_params){
		.in = {DW_IN_H, DW_IN_W, DW_IN_C},
		.out = {DW_OUT_H, DW_OUT_W, DW_OUT_C},
		.kernel_h = DW_K,
		.kernel_w = DW_K,
		.stride_h = DW_STRIDE,
		.stride_w = DW_STRIDE,
		.pad_top = DW_PAD_TOP,
		.pad_left = DW_PAD_LEFT,
	};
}

static void clear(void)
{
	memset(out, 0, sizeof(out));
	memset(grad, 0, sizeof(grad));
}

ZTEST(peft_kernels, test_conv2d)
{
	const peft_conv_params p = conv_params();
	const peft_weights_s8 w = {conv_w_s8, conv_w_scales, CONV_OUT_C};

	clear();
	PEFT_ASSERT_OK(peft_conv2d_fwd_s8(&p, conv_in, &w, conv_bias, out));
	PEFT_ASSERT_CLOSE(out, conv_out, ARRAY_SIZE(conv_out), ATOL, RTOL);
	clear();
	PEFT_ASSERT_OK(peft_conv2d_fwd_f32(&p, conv_in, conv_w_f32, conv_bias, out));
	PEFT_ASSERT_CLOSE(out, conv_out, ARRAY_SIZE(conv_out), ATOL, RTOL);

	PEFT_ASSERT_OK(peft_conv2d_bwd_input_s8(&p, &w, conv_grad_out, grad, false));
	PEFT_ASSERT_CLOSE(grad, conv_grad_in, ARRAY_SIZE(conv_grad_in), ATOL, RTOL);
	PEFT_ASSERT_OK(peft_conv2d_bwd_input_f32(&p, conv_w_f32, conv_grad_out, grad, false));
	PEFT_ASSERT_CLOSE(grad, conv_grad_in, ARRAY_SIZE(conv_grad_in), ATOL, RTOL);

	clear();
	PEFT_ASSERT_OK(peft_conv2d_bwd_weight_f32(&p, conv_in, conv_grad_out, grad));
	PEFT_ASSERT_CLOSE(grad, conv_grad_w, ARRAY_SIZE(conv_grad_w), ATOL, RTOL);
	clear();
	PEFT_ASSERT_OK(peft_conv2d_bwd_bias_f32(&p.out, conv_grad_out, grad));
	PEFT_ASSERT_CLOSE(grad, conv_grad_bias, ARRAY_SIZE(conv_grad_bias), ATOL, RTOL);
}

ZTEST(peft_kernels, test_conv2d_rejects_bad_geometry)
{
	peft_conv_params p = conv_params();
	const peft_weights_s8 w = {conv_w_s8, conv_w_scales, CONV_OUT_C};

	p.out.h += 3; /* no pad_bottom < kernel_h + stride_h gives this */
	out[0] = 42.0f;
	zassert_equal(peft_conv2d_fwd_s8(&p, conv_in, &w, conv_bias, out), PEFT_ERR_ARG);
	zassert_equal(out[0], 42.0f, "output touched on error");
	p = conv_params();
	zassert_equal(peft_conv2d_fwd_s8(&p, NULL, &w, conv_bias, out), PEFT_ERR_ARG);
}

ZTEST(peft_kernels, test_depthwise_conv2d)
{
	const peft_conv_params p = dw_params();
	const peft_weights_s8 w = {dw_w_s8, dw_w_scales, DW_OUT_C};

	clear();
	PEFT_ASSERT_OK(peft_depthwise_conv2d_fwd_s8(&p, dw_in, &w, dw_bias, out));
	PEFT_ASSERT_CLOSE(out, dw_out, ARRAY_SIZE(dw_out), ATOL, RTOL);
	clear();
	PEFT_ASSERT_OK(peft_depthwise_conv2d_fwd_f32(&p, dw_in, dw_w_f32, dw_bias, out));
	PEFT_ASSERT_CLOSE(out, dw_out, ARRAY_SIZE(dw_out), ATOL, RTOL);

	PEFT_ASSERT_OK(peft_depthwise_conv2d_bwd_input_s8(&p, &w, dw_grad_out, grad, false));
	PEFT_ASSERT_CLOSE(grad, dw_grad_in, ARRAY_SIZE(dw_grad_in), ATOL, RTOL);
	PEFT_ASSERT_OK(peft_depthwise_conv2d_bwd_input_f32(&p, dw_w_f32, dw_grad_out, grad, false));
	PEFT_ASSERT_CLOSE(grad, dw_grad_in, ARRAY_SIZE(dw_grad_in), ATOL, RTOL);

	clear();
	PEFT_ASSERT_OK(peft_depthwise_conv2d_bwd_weight_f32(&p, dw_in, dw_grad_out, grad));
	PEFT_ASSERT_CLOSE(grad, dw_grad_w, ARRAY_SIZE(dw_grad_w), ATOL, RTOL);
	clear();
	PEFT_ASSERT_OK(peft_depthwise_conv2d_bwd_bias_f32(&p.out, dw_grad_out, grad));
	PEFT_ASSERT_CLOSE(grad, dw_grad_bias, ARRAY_SIZE(dw_grad_bias), ATOL, RTOL);
}

ZTEST(peft_kernels, test_fully_connected)
{
	const peft_fc_params p = {FC_ROWS, FC_IN, FC_OUT};
	const peft_weights_s8 w = {fc_w_s8, fc_w_scales, FC_OUT};

	clear();
	PEFT_ASSERT_OK(peft_fc_fwd_s8(&p, fc_in, &w, fc_bias, out));
	PEFT_ASSERT_CLOSE(out, fc_out, ARRAY_SIZE(fc_out), ATOL, RTOL);
	clear();
	PEFT_ASSERT_OK(peft_fc_fwd_f32(&p, fc_in, fc_w_f32, fc_bias, out));
	PEFT_ASSERT_CLOSE(out, fc_out, ARRAY_SIZE(fc_out), ATOL, RTOL);

	PEFT_ASSERT_OK(peft_fc_bwd_input_s8(&p, &w, fc_grad_out, grad, false));
	PEFT_ASSERT_CLOSE(grad, fc_grad_in, ARRAY_SIZE(fc_grad_in), ATOL, RTOL);
	/* accumulate = true adds a second copy. */
	PEFT_ASSERT_OK(peft_fc_bwd_input_f32(&p, fc_w_f32, fc_grad_out, grad, true));
	for (size_t i = 0; i < ARRAY_SIZE(fc_grad_in); i++) {
		out[i] = 2.0f * fc_grad_in[i];
	}
	PEFT_ASSERT_CLOSE(grad, out, ARRAY_SIZE(fc_grad_in), ATOL, RTOL);

	clear();
	PEFT_ASSERT_OK(peft_fc_bwd_weight_f32(&p, fc_in, fc_grad_out, grad));
	PEFT_ASSERT_CLOSE(grad, fc_grad_w, ARRAY_SIZE(fc_grad_w), ATOL, RTOL);
	clear();
	PEFT_ASSERT_OK(peft_fc_bwd_bias_f32(&p, fc_grad_out, grad));
	PEFT_ASSERT_CLOSE(grad, fc_grad_bias, ARRAY_SIZE(fc_grad_bias), ATOL, RTOL);
}

ZTEST(peft_kernels, test_mean)
{
	const peft_dims d = {MEAN_H, MEAN_W, MEAN_C};

	clear();
	PEFT_ASSERT_OK(peft_mean_fwd_f32(&d, mean_in, out));
	PEFT_ASSERT_CLOSE(out, mean_out, ARRAY_SIZE(mean_out), ATOL, RTOL);
	PEFT_ASSERT_OK(peft_mean_bwd_input_f32(&d, mean_grad_out, grad, false));
	PEFT_ASSERT_CLOSE(grad, mean_grad_in, ARRAY_SIZE(mean_grad_in), ATOL, RTOL);
}

ZTEST(peft_kernels, test_avg_pool2d)
{
	const peft_conv_params p = {
		.in = {POOL_IN_H, POOL_IN_W, POOL_C},
		.out = {POOL_OUT_H, POOL_OUT_W, POOL_C},
		.kernel_h = POOL_K,
		.kernel_w = POOL_K,
		.stride_h = POOL_STRIDE,
		.stride_w = POOL_STRIDE,
		.pad_top = POOL_PAD_TOP,
		.pad_left = POOL_PAD_LEFT,
	};

	clear();
	PEFT_ASSERT_OK(peft_avg_pool2d_fwd_f32(&p, pool_in, out));
	PEFT_ASSERT_CLOSE(out, pool_out, ARRAY_SIZE(pool_out), ATOL, RTOL);
	PEFT_ASSERT_OK(peft_avg_pool2d_bwd_input_f32(&p, pool_grad_out, grad, false));
	PEFT_ASSERT_CLOSE(grad, pool_grad_in, ARRAY_SIZE(pool_grad_in), ATOL, RTOL);
}

ZTEST(peft_kernels, test_pad)
{
	const peft_pad_params p = {
		.in = {PAD_IN_H, PAD_IN_W, PAD_C},
		.out = {PAD_OUT_H, PAD_OUT_W, PAD_C},
		.pad_top = PAD_TOP,
		.pad_left = PAD_LEFT,
	};

	clear();
	PEFT_ASSERT_OK(peft_pad_fwd_f32(&p, pad_in, out));
	PEFT_ASSERT_CLOSE(out, pad_out, ARRAY_SIZE(pad_out), 0.0f, 0.0f);
	PEFT_ASSERT_OK(peft_pad_bwd_input_f32(&p, pad_grad_out, grad, false));
	PEFT_ASSERT_CLOSE(grad, pad_grad_in, ARRAY_SIZE(pad_grad_in), 0.0f, 0.0f);
}

ZTEST(peft_kernels, test_activations)
{
	memcpy(out, act_in, sizeof(act_in));
	PEFT_ASSERT_OK(peft_activation_fwd_f32(PEFT_ACT_RELU, ACT_N, out));
	PEFT_ASSERT_CLOSE(out, relu_out, ACT_N, 0.0f, 0.0f);
	memcpy(grad, act_grad_out, sizeof(act_grad_out));
	PEFT_ASSERT_OK(peft_activation_bwd_f32(PEFT_ACT_RELU, ACT_N, out, grad));
	PEFT_ASSERT_CLOSE(grad, relu_grad_in, ACT_N, 0.0f, 0.0f);

	memcpy(out, act_in, sizeof(act_in));
	PEFT_ASSERT_OK(peft_activation_fwd_f32(PEFT_ACT_RELU6, ACT_N, out));
	PEFT_ASSERT_CLOSE(out, relu6_out, ACT_N, 0.0f, 0.0f);
	memcpy(grad, act_grad_out, sizeof(act_grad_out));
	PEFT_ASSERT_OK(peft_activation_bwd_f32(PEFT_ACT_RELU6, ACT_N, out, grad));
	PEFT_ASSERT_CLOSE(grad, relu6_grad_in, ACT_N, 0.0f, 0.0f);
}

ZTEST(peft_kernels, test_scale_shift)
{
	static float grad_beta[SS_C];

	clear();
	memset(grad_beta, 0, sizeof(grad_beta));
	PEFT_ASSERT_OK(peft_scale_shift_fwd_f32(SS_PIXELS, SS_C, ss_in, ss_gamma, ss_beta, out));
	PEFT_ASSERT_CLOSE(out, ss_out, ARRAY_SIZE(ss_out), ATOL, RTOL);
	PEFT_ASSERT_OK(peft_scale_shift_bwd_input_f32(SS_PIXELS, SS_C, ss_gamma, ss_grad_out, grad,
						      false));
	PEFT_ASSERT_CLOSE(grad, ss_grad_in, ARRAY_SIZE(ss_grad_in), ATOL, RTOL);
	memset(grad, 0, sizeof(grad));
	PEFT_ASSERT_OK(peft_scale_shift_bwd_param_f32(SS_PIXELS, SS_C, ss_in, ss_grad_out, grad,
						      grad_beta));
	PEFT_ASSERT_CLOSE(grad, ss_grad_gamma, SS_C, ATOL, RTOL);
	PEFT_ASSERT_CLOSE(grad_beta, ss_grad_beta, SS_C, ATOL, RTOL);
}

ZTEST(peft_kernels, test_add)
{
	clear();
	PEFT_ASSERT_OK(peft_add_fwd_f32(ADD_N, add_a, add_b, out));
	PEFT_ASSERT_CLOSE(out, add_out, ADD_N, ATOL, RTOL);
	/* d(a + b)/da = 1: the input gradient is the output gradient. */
	PEFT_ASSERT_OK(peft_add_bwd_input_f32(ADD_N, add_a, grad, false));
	PEFT_ASSERT_CLOSE(grad, add_a, ADD_N, 0.0f, 0.0f);
}

ZTEST(peft_kernels, test_softmax_xent)
{
	float loss = 0.0f;

	clear();
	PEFT_ASSERT_OK(peft_softmax_xent_fwd_f32(XENT_N, xent_logits, XENT_LABEL, out, &loss));
	PEFT_ASSERT_CLOSE(out, xent_probs, XENT_N, 1e-6f, RTOL);
	PEFT_ASSERT_CLOSE(&loss, xent_loss, 1, 1e-6f, RTOL);
	PEFT_ASSERT_OK(peft_softmax_xent_bwd_f32(XENT_N, out, XENT_LABEL, grad));
	PEFT_ASSERT_CLOSE(grad, xent_grad, XENT_N, 1e-6f, RTOL);
	zassert_equal(peft_softmax_xent_fwd_f32(XENT_N, xent_logits, XENT_N, out, &loss),
		      PEFT_ERR_ARG, "label out of range accepted");
}

ZTEST(peft_kernels, test_quantize)
{
	static int8_t q[QUANT_N];

	PEFT_ASSERT_OK(peft_quantize_s8(QUANT_N, quant_real, QUANT_SCALE, QUANT_ZP, q));
	for (int i = 0; i < QUANT_N; i++) {
		zassert_equal(q[i], quant_q[i], "q[%d] = %d, want %d", i, q[i], quant_q[i]);
	}
	PEFT_ASSERT_OK(peft_dequantize_s8(QUANT_N, quant_q, QUANT_SCALE, QUANT_ZP, out));
	PEFT_ASSERT_CLOSE(out, quant_deq, QUANT_N, 1e-6f, 1e-6f);
}

ZTEST_SUITE(peft_kernels, NULL, NULL, NULL, NULL, NULL);
