/* ADD, MEAN, AVERAGE_POOL_2D, PAD, activations, scale-shift, softmax +
 * cross-entropy and quantization on hand-computed cases. */
#include <math.h>
#include <stddef.h>

#include "peft/peft_kernels.h"
#include "peft_test.h"

#define TOL 1e-6

static void test_softmax_xent(void)
{
	/* logits {0, ln 2}: exp = {1, 2}, probs = {1/3, 2/3};
	 * label 1: loss = -ln(2/3) = ln 1.5; grad = probs - onehot = {1/3, -1/3}. */
	const float logits[2] = {0.0f, 0.69314718f};
	float probs[2];
	float loss = 0;
	float grad[2];

	PEFT_CHECK_EQ_INT(peft_softmax_xent_fwd_f32(2, logits, 1, probs, &loss), PEFT_OK);
	PEFT_CHECK_NEAR(probs[0], 1.0 / 3.0, TOL);
	PEFT_CHECK_NEAR(probs[1], 2.0 / 3.0, TOL);
	PEFT_CHECK_NEAR(loss, log(1.5), TOL);
	PEFT_CHECK_EQ_INT(peft_softmax_xent_bwd_f32(2, probs, 1, grad), PEFT_OK);
	PEFT_CHECK_NEAR(grad[0], 1.0 / 3.0, TOL);
	PEFT_CHECK_NEAR(grad[1], -1.0 / 3.0, TOL);

	/* Shifted by 1000 (exp(1000) overflows float): the same answer. */
	const float big[2] = {1000.0f, 1000.6931f};

	PEFT_CHECK_EQ_INT(peft_softmax_xent_fwd_f32(2, big, 0, probs, &loss), PEFT_OK);
	PEFT_CHECK_NEAR(probs[0], 1.0 / 3.0, 1e-4);
	PEFT_CHECK_NEAR(loss, log(3.0), 1e-4);

	/* A single class: probability 1, loss 0. */
	PEFT_CHECK_EQ_INT(peft_softmax_xent_fwd_f32(1, logits, 0, probs, &loss), PEFT_OK);
	PEFT_CHECK_NEAR(probs[0], 1.0, TOL);
	PEFT_CHECK_NEAR(loss, 0.0, TOL);

	PEFT_CHECK_EQ_INT(peft_softmax_xent_fwd_f32(2, logits, 2, probs, &loss), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_softmax_xent_fwd_f32(2, logits, -1, probs, &loss), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_softmax_xent_fwd_f32(2, logits, 0, probs, NULL), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_softmax_xent_bwd_f32(0, probs, 0, grad), PEFT_ERR_ARG);
	const float inf[2] = {INFINITY, 0.0f};

	PEFT_CHECK_EQ_INT(peft_softmax_xent_fwd_f32(2, inf, 0, probs, &loss), PEFT_ERR_NUMERIC);
}

static void test_activation(void)
{
	/* relu6 {-1, 0, 3, 6, 7} = {0, 0, 3, 6, 6}; its gradient (from the
	 * output) passes only where 0 < y < 6: {0, 0, 1, 0, 0}. */
	float x[5] = {-1, 0, 3, 6, 7};
	float g[5] = {1, 1, 1, 1, 1};

	PEFT_CHECK_EQ_INT(peft_activation_fwd_f32(PEFT_ACT_RELU6, 5, x), PEFT_OK);
	PEFT_CHECK_NEAR(x[0], 0, TOL);
	PEFT_CHECK_NEAR(x[2], 3, TOL);
	PEFT_CHECK_NEAR(x[4], 6, TOL);
	PEFT_CHECK_EQ_INT(peft_activation_bwd_f32(PEFT_ACT_RELU6, 5, x, g), PEFT_OK);
	PEFT_CHECK_NEAR(g[0] + g[1] + g[3] + g[4], 0, TOL);
	PEFT_CHECK_NEAR(g[2], 1, TOL);

	/* relu {-1, 0, 3, 7} = {0, 0, 3, 7}, gradient {0, 0, 1, 1}. */
	float r[4] = {-1, 0, 3, 7};
	float gr[4] = {2, 2, 2, 2};

	PEFT_CHECK_EQ_INT(peft_activation_fwd_f32(PEFT_ACT_RELU, 4, r), PEFT_OK);
	PEFT_CHECK_NEAR(r[3], 7, TOL);
	PEFT_CHECK_EQ_INT(peft_activation_bwd_f32(PEFT_ACT_RELU, 4, r, gr), PEFT_OK);
	PEFT_CHECK_NEAR(gr[1], 0, TOL);
	PEFT_CHECK_NEAR(gr[3], 2, TOL);

	/* NONE changes nothing; an unknown activation is refused. */
	float n[2] = {-5, 5};

	PEFT_CHECK_EQ_INT(peft_activation_fwd_f32(PEFT_ACT_NONE, 2, n), PEFT_OK);
	PEFT_CHECK_NEAR(n[0], -5, TOL);
	PEFT_CHECK_EQ_INT(peft_activation_fwd_f32((peft_activation)3, 2, n), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_activation_bwd_f32(PEFT_ACT_RELU, 0, n, n), PEFT_ERR_ARG);
}

static void test_mean_and_add(void)
{
	/* 2x2x1 {1, 2, 3, 4}: mean 2.5; gradient 1 spreads as 0.25 each. */
	const peft_dims d = {2, 2, 1};
	const float x[4] = {1, 2, 3, 4};
	float m = 0;
	float gi[4] = {1, 1, 1, 1};
	const float one = 1.0f;

	PEFT_CHECK_EQ_INT(peft_mean_fwd_f32(&d, x, &m), PEFT_OK);
	PEFT_CHECK_NEAR(m, 2.5, TOL);
	PEFT_CHECK_EQ_INT(peft_mean_bwd_input_f32(&d, &one, gi, true), PEFT_OK);
	PEFT_CHECK_NEAR(gi[3], 1.25, TOL);
	PEFT_CHECK_EQ_INT(peft_mean_bwd_input_f32(&d, &one, gi, false), PEFT_OK);
	PEFT_CHECK_NEAR(gi[0], 0.25, TOL);

	float sum[4];

	PEFT_CHECK_EQ_INT(peft_add_fwd_f32(4, x, x, sum), PEFT_OK);
	PEFT_CHECK_NEAR(sum[3], 8, TOL);
	PEFT_CHECK_EQ_INT(peft_add_bwd_input_f32(4, x, sum, true), PEFT_OK);
	PEFT_CHECK_NEAR(sum[3], 12, TOL);
	PEFT_CHECK_EQ_INT(peft_add_bwd_input_f32(4, x, sum, false), PEFT_OK);
	PEFT_CHECK_NEAR(sum[3], 4, TOL);
	PEFT_CHECK_EQ_INT(peft_add_fwd_f32(0, x, x, sum), PEFT_ERR_ARG);
}

static void test_avg_pool(void)
{
	/* 3x3 input 1..9, 2x2 window, stride 2, SAME: out 2x2, total pad
	 * (2 - 1) * 2 + 2 - 3 = 1 -> pad_top 0. Padding is not counted:
	 * {(1+2+4+5)/4, (3+6)/2, (7+8)/2, 9/1} = {3, 4.5, 7.5, 9}. */
	const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	const peft_conv_params p = {
		.in = {3, 3, 1},
		.out = {2, 2, 1},
		.kernel_h = 2,
		.kernel_w = 2,
		.stride_h = 2,
		.stride_w = 2,
	};
	float out[6]; /* room for the 3x2 case below */

	PEFT_CHECK_EQ_INT(peft_avg_pool2d_fwd_f32(&p, x, out), PEFT_OK);
	PEFT_CHECK_NEAR(out[0], 3, TOL);
	PEFT_CHECK_NEAR(out[1], 4.5, TOL);
	PEFT_CHECK_NEAR(out[2], 7.5, TOL);
	PEFT_CHECK_NEAR(out[3], 9, TOL);

	/* grad_out ones: 1/4 in the full window, 1/2 in the edge ones, 1 in the
	 * corner window. */
	const float ones[4] = {1, 1, 1, 1};
	const float want[9] = {0.25f, 0.25f, 0.5f, 0.25f, 0.25f, 0.5f, 0.5f, 0.5f, 1.0f};
	float gi[9];

	PEFT_CHECK_EQ_INT(peft_avg_pool2d_bwd_input_f32(&p, ones, gi, false), PEFT_OK);
	for (int i = 0; i < 9; i++) {
		PEFT_CHECK_NEAR(gi[i], want[i], TOL);
	}
	/* With stride 1, out.h 4 would need a window starting at row 3, past
	 * the input (padding only, count 0): refused; out.h 3 is fine. */
	peft_conv_params bad = p;

	bad.out.h = 3;
	bad.stride_h = 1;
	bad.pad_top = 0;
	PEFT_CHECK_EQ_INT(peft_avg_pool2d_fwd_f32(&bad, x, out), PEFT_OK); /* rows 0-1, 1-2, 2 */
	bad.out.h = 4;
	PEFT_CHECK_EQ_INT(peft_avg_pool2d_fwd_f32(&bad, x, out), PEFT_ERR_ARG);
}

static void test_pad(void)
{
	/* 1x2 {1, 2} padded to 2x3 with one leading row and column:
	 * {0, 0, 0, 0, 1, 2}. Backward crops: grad_out 0..5 -> {4, 5}. */
	const peft_pad_params p = {.in = {1, 2, 1}, .out = {2, 3, 1}, .pad_top = 1, .pad_left = 1};
	const float x[2] = {1, 2};
	float out[6];
	const float g[6] = {0, 1, 2, 3, 4, 5};
	float gi[2] = {10, 10};

	PEFT_CHECK_EQ_INT(peft_pad_fwd_f32(&p, x, out), PEFT_OK);
	PEFT_CHECK_NEAR(out[0] + out[1] + out[2] + out[3], 0, TOL);
	PEFT_CHECK_NEAR(out[4], 1, TOL);
	PEFT_CHECK_NEAR(out[5], 2, TOL);
	PEFT_CHECK_EQ_INT(peft_pad_bwd_input_f32(&p, g, gi, true), PEFT_OK);
	PEFT_CHECK_NEAR(gi[0], 14, TOL);
	PEFT_CHECK_NEAR(gi[1], 15, TOL);

	peft_pad_params bad = p;

	bad.pad_left = 2; /* 2 + 2 > 3 columns */
	PEFT_CHECK_EQ_INT(peft_pad_fwd_f32(&bad, x, out), PEFT_ERR_ARG);
	bad = p;
	bad.out.c = 2;
	PEFT_CHECK_EQ_INT(peft_pad_bwd_input_f32(&bad, g, gi, false), PEFT_ERR_ARG);
	PEFT_CHECK_NEAR(gi[0], 14, TOL);
}

static void test_scale_shift(void)
{
	/* 2 pixels x 2 channels, gamma {2, -1}, beta {1, 0}:
	 * in {1, 2, 3, 4} -> {3, -2, 7, -4}. grad_out ones: grad_in = gamma,
	 * grad_gamma = {1 + 3, 2 + 4}, grad_beta = {2, 2}. */
	const float in[4] = {1, 2, 3, 4};
	const float gamma[2] = {2, -1};
	const float beta[2] = {1, 0};
	const float ones[4] = {1, 1, 1, 1};
	float out[4];
	float gi[4];
	float gg[2] = {0};
	float gb[2] = {0};

	PEFT_CHECK_EQ_INT(peft_scale_shift_fwd_f32(2, 2, in, gamma, beta, out), PEFT_OK);
	PEFT_CHECK_NEAR(out[0], 3, TOL);
	PEFT_CHECK_NEAR(out[3], -4, TOL);
	PEFT_CHECK_EQ_INT(peft_scale_shift_bwd_input_f32(2, 2, gamma, ones, gi, false), PEFT_OK);
	PEFT_CHECK_NEAR(gi[1], -1, TOL);
	PEFT_CHECK_EQ_INT(peft_scale_shift_bwd_param_f32(2, 2, in, ones, gg, gb), PEFT_OK);
	PEFT_CHECK_NEAR(gg[0], 4, TOL);
	PEFT_CHECK_NEAR(gg[1], 6, TOL);
	PEFT_CHECK_NEAR(gb[1], 2, TOL);
	PEFT_CHECK_EQ_INT(peft_scale_shift_bwd_param_f32(2, 0, in, ones, gg, gb), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_scale_shift_bwd_param_f32(2, 2, in, NULL, gg, gb), PEFT_ERR_ARG);
	PEFT_CHECK_NEAR(gg[0], 4, TOL);
	/* grad_beta NULL: gamma's gradient only (IA3) */
	PEFT_CHECK_EQ_INT(peft_scale_shift_bwd_param_f32(2, 2, in, ones, gg, NULL), PEFT_OK);
	PEFT_CHECK_NEAR(gg[0], 8, TOL);
	PEFT_CHECK_NEAR(gg[1], 12, TOL);
	PEFT_CHECK_NEAR(gb[1], 2, TOL);
}

static void test_quantize(void)
{
	/* scale 0.25 makes x / scale exact: halves round away from zero (TFLite),
	 * unlike round-half-to-even: 0.125 / 0.25 = 0.5 -> 1, 0.375 -> 1.5 -> 2. */
	const float x[6] = {0.125f, -0.125f, 0.375f, -0.625f, 100.0f, -100.0f};
	const int8_t want[6] = {1, -1, 2, -3, 127, -128};
	int8_t q[6];

	PEFT_CHECK_EQ_INT(peft_quantize_s8(6, x, 0.25f, 0, q), PEFT_OK);
	for (int i = 0; i < 6; i++) {
		PEFT_CHECK_EQ_INT(q[i], want[i]);
	}
	/* Zero point 10: 0.5 -> 1 + 10 = 11; -100 / 0.25 + 10 clamps to -128. */
	PEFT_CHECK_EQ_INT(peft_quantize_s8(6, x, 0.25f, 10, q), PEFT_OK);
	PEFT_CHECK_EQ_INT(q[0], 11);
	PEFT_CHECK_EQ_INT(q[3], 7);
	PEFT_CHECK_EQ_INT(q[5], -128);

	/* real = scale * (q - zero_point): 0.5 * {-129, -1, 126}. */
	const int8_t in[3] = {-128, 0, 127};
	float out[3];

	PEFT_CHECK_EQ_INT(peft_dequantize_s8(3, in, 0.5f, 1, out), PEFT_OK);
	PEFT_CHECK_NEAR(out[0], -64.5, 0);
	PEFT_CHECK_NEAR(out[1], -0.5, 0);
	PEFT_CHECK_NEAR(out[2], 63, 0);

	PEFT_CHECK_EQ_INT(peft_quantize_s8(6, x, 0.0f, 0, q), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_quantize_s8(6, x, 0.25f, 128, q), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_dequantize_s8(3, in, -1.0f, 0, out), PEFT_ERR_ARG);
	const float nan_in[2] = {1.0f, NAN};

	PEFT_CHECK_EQ_INT(peft_quantize_s8(2, nan_in, 0.25f, 0, q), PEFT_ERR_NUMERIC);
	PEFT_CHECK_EQ_INT(q[0], 11); /* untouched */
}

/* libm's answer: roundf (halves away from zero), then the zero point, clamped. */
static int8_t roundf_code(float v, int32_t zero_point)
{
	const float q = roundf(v) + (float)zero_point;

	return (int8_t)(q < -128.0f ? -128.0f : q > 127.0f ? 127.0f : q);
}

/* The runtime rounds without libm: every float within 8 ulps of each integer and
 * half-integer in [-300, 300] (scale 1: x / scale is x), the infinities and values
 * far beyond the clamp, at five zero points, give roundf's code. */
static void test_quantize_rounds_as_roundf(void)
{
	static float x[601 * 2 * 17 + 6];
	static int8_t q[sizeof(x) / sizeof(x[0])];
	int32_t n = 0;

	for (int32_t k = -300; k <= 300; k++) {
		for (int half = 0; half < 2; half++) {
			const float centre = (float)k + (half ? 0.5f : 0.0f);
			float v = centre;

			for (int i = 0; i < 8; i++) {
				v = nextafterf(v, -INFINITY);
			}
			for (int i = 0; i < 17; i++) {
				x[n++] = v;
				v = nextafterf(v, INFINITY);
			}
		}
	}
	const float far[6] = {INFINITY, -INFINITY, 1e30f, -1e30f, 256.5f, -8388609.0f};

	for (int i = 0; i < 6; i++) {
		x[n++] = far[i];
	}
	const int32_t zero_points[5] = {-128, -1, 0, 77, 127};

	for (int z = 0; z < 5; z++) {
		PEFT_CHECK_EQ_INT(peft_quantize_s8(n, x, 1.0f, zero_points[z], q), PEFT_OK);
		for (int32_t i = 0; i < n; i++) {
			PEFT_CHECK_EQ_INT(q[i], roundf_code(x[i], zero_points[z]));
		}
	}
}

int main(void)
{
	test_softmax_xent();
	test_activation();
	test_mean_and_add();
	test_avg_pool();
	test_pad();
	test_scale_shift();
	test_quantize();
	test_quantize_rounds_as_roundf();
	return 0;
}
