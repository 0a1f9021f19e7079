/* CONV_2D kernels on hand-computed cases (each result worked out in the
 * comment above it), accumulate semantics and argument errors. */
#include <stddef.h>
#include <string.h>

#include "peft/peft_kernels.h"
#include "peft_test.h"

#define TOL 1e-5

/* 3x3 input 1..9, one 2x2 kernel [[1, 2], [3, 4]], stride 1, VALID -> 2x2. */
static const float in3x3[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const peft_conv_params valid_2x2 = {
	.in = {3, 3, 1},
	.out = {2, 2, 1},
	.kernel_h = 2,
	.kernel_w = 2,
	.stride_h = 1,
	.stride_w = 1,
	.pad_top = 0,
	.pad_left = 0,
};

static void test_valid_forward(void)
{
	const float w[4] = {1, 2, 3, 4};
	const float bias[1] = {0.5f};
	float out[4];

	/* out[0][0] = 1*1 + 2*2 + 4*3 + 5*4 = 37; [0][1] = 2 + 6 + 15 + 24 = 47;
	 * [1][0] = 4 + 10 + 21 + 32 = 67; [1][1] = 5 + 12 + 24 + 36 = 77; + 0.5. */
	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_f32(&valid_2x2, in3x3, w, bias, out), PEFT_OK);
	PEFT_CHECK_NEAR(out[0], 37.5, TOL);
	PEFT_CHECK_NEAR(out[1], 47.5, TOL);
	PEFT_CHECK_NEAR(out[2], 67.5, TOL);
	PEFT_CHECK_NEAR(out[3], 77.5, TOL);

	/* The same kernel as int8 {2, 4, 6, 8} with scale 0.5, no bias. */
	const int8_t q[4] = {2, 4, 6, 8};
	const float scale[1] = {0.5f};
	const peft_weights_s8 ws = {q, scale, 1};

	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_s8(&valid_2x2, in3x3, &ws, NULL, out), PEFT_OK);
	PEFT_CHECK_NEAR(out[0], 37, TOL);
	PEFT_CHECK_NEAR(out[3], 77, TOL);
}

static void test_valid_backward(void)
{
	const float w[4] = {1, 2, 3, 4};
	const float ones[4] = {1, 1, 1, 1};
	float gi[9];

	/* grad_out all ones: each input gets the sum of the taps that read it.
	 * Corners 1, 2, 3, 4; edges 1+2, 1+3, 2+4, 3+4; centre 1+2+3+4. */
	const float want_gi[9] = {1, 3, 2, 4, 10, 6, 3, 7, 4};

	PEFT_CHECK_EQ_INT(peft_conv2d_bwd_input_f32(&valid_2x2, w, ones, gi, false), PEFT_OK);
	for (int i = 0; i < 9; i++) {
		PEFT_CHECK_NEAR(gi[i], want_gi[i], TOL);
	}
	/* accumulate adds onto what is there. */
	PEFT_CHECK_EQ_INT(peft_conv2d_bwd_input_f32(&valid_2x2, w, ones, gi, true), PEFT_OK);
	for (int i = 0; i < 9; i++) {
		PEFT_CHECK_NEAR(gi[i], 2 * want_gi[i], TOL);
	}
	/* int8 {2, 4, 6, 8} * 0.5 is the same kernel. */
	const int8_t q[4] = {2, 4, 6, 8};
	const float scale[1] = {0.5f};
	const peft_weights_s8 ws = {q, scale, 1};

	PEFT_CHECK_EQ_INT(peft_conv2d_bwd_input_s8(&valid_2x2, &ws, ones, gi, false), PEFT_OK);
	for (int i = 0; i < 9; i++) {
		PEFT_CHECK_NEAR(gi[i], want_gi[i], TOL);
	}

	/* grad_w[ky][kx] = sum of the inputs under tap (ky, kx):
	 * 1+2+4+5 = 12, 2+3+5+6 = 16, 4+5+7+8 = 24, 5+6+8+9 = 28; added to 1. */
	float gw[4] = {1, 1, 1, 1};

	PEFT_CHECK_EQ_INT(peft_conv2d_bwd_weight_f32(&valid_2x2, in3x3, ones, gw), PEFT_OK);
	PEFT_CHECK_NEAR(gw[0], 13, TOL);
	PEFT_CHECK_NEAR(gw[1], 17, TOL);
	PEFT_CHECK_NEAR(gw[2], 25, TOL);
	PEFT_CHECK_NEAR(gw[3], 29, TOL);

	/* grad_bias = sum of grad_out = 4, added twice to 0. */
	float gb[1] = {0};

	PEFT_CHECK_EQ_INT(peft_conv2d_bwd_bias_f32(&valid_2x2.out, ones, gb), PEFT_OK);
	PEFT_CHECK_EQ_INT(peft_conv2d_bwd_bias_f32(&valid_2x2.out, ones, gb), PEFT_OK);
	PEFT_CHECK_NEAR(gb[0], 8, TOL);
}

/* 4x4 input 0..15, 3x3 kernel of ones, stride 2, SAME: out 2x2,
 * total pad = (2 - 1) * 2 + 3 - 4 = 1 -> pad_top 0, pad_bottom 1. */
static void test_same_stride2(void)
{
	float in[16];
	float w[9];
	float out[4];

	for (int i = 0; i < 16; i++) {
		in[i] = (float)i;
	}
	for (int i = 0; i < 9; i++) {
		w[i] = 1.0f;
	}
	const peft_conv_params p = {
		.in = {4, 4, 1},
		.out = {2, 2, 1},
		.kernel_h = 3,
		.kernel_w = 3,
		.stride_h = 2,
		.stride_w = 2,
		.pad_top = 0,
		.pad_left = 0,
	};

	/* [0][0]: rows 0-2, cols 0-2: 3 + 15 + 27 = 45. [0][1]: cols 2-3 (4 is
	 * padding): 5 + 13 + 21 = 39. [1][0]: rows 2-3: 27 + 39 = 66.
	 * [1][1]: 10 + 11 + 14 + 15 = 50. */
	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_f32(&p, in, w, NULL, out), PEFT_OK);
	PEFT_CHECK_NEAR(out[0], 45, TOL);
	PEFT_CHECK_NEAR(out[1], 39, TOL);
	PEFT_CHECK_NEAR(out[2], 66, TOL);
	PEFT_CHECK_NEAR(out[3], 50, TOL);

	/* Backward with grad_out = {1, 10, 100, 1000}: input (3, 3) is read only
	 * by output (1, 1); (2, 2) by all four; (0, 0) only by (0, 0); (0, 3)
	 * only by (0, 1). */
	const float g[4] = {1, 10, 100, 1000};
	float gi[16];

	PEFT_CHECK_EQ_INT(peft_conv2d_bwd_input_f32(&p, w, g, gi, false), PEFT_OK);
	PEFT_CHECK_NEAR(gi[15], 1000, TOL);
	PEFT_CHECK_NEAR(gi[10], 1111, TOL);
	PEFT_CHECK_NEAR(gi[0], 1, TOL);
	PEFT_CHECK_NEAR(gi[3], 10, TOL);
}

/* 3x3 input 1..9, 3x3 kernel of ones, stride 1, SAME: pad 1 on every side.
 * Corner (0, 0) sums 1 + 2 + 4 + 5 = 12; the centre sums everything, 45. */
static void test_same_leading_pad(void)
{
	const float w[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
	float out[9];
	const peft_conv_params p = {
		.in = {3, 3, 1},
		.out = {3, 3, 1},
		.kernel_h = 3,
		.kernel_w = 3,
		.stride_h = 1,
		.stride_w = 1,
		.pad_top = 1,
		.pad_left = 1,
	};

	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_f32(&p, in3x3, w, NULL, out), PEFT_OK);
	PEFT_CHECK_NEAR(out[0], 12, TOL);
	PEFT_CHECK_NEAR(out[4], 45, TOL);
	PEFT_CHECK_NEAR(out[8], 5 + 6 + 8 + 9, TOL);
}

/* One pixel, 2 -> 2 channels, 1x1 kernel, per-channel scales {0.5, 2}:
 * q = [[1, 2], [3, 4]], x = {1, 1}, bias {0, 1}: out = {0.5 * 3, 2 * 7 + 1} = {1.5, 15};
 * grad_in for grad_out {1, 1} = {0.5 * 1 + 2 * 3, 0.5 * 2 + 2 * 4} = {6.5, 9}. */
static void test_per_channel_scales(void)
{
	const int8_t q[4] = {1, 2, 3, 4};
	const float scales[2] = {0.5f, 2.0f};
	const peft_weights_s8 ws = {q, scales, 2};
	const float x[2] = {1, 1};
	const float bias[2] = {0, 1};
	float out[2];
	float gi[2];
	const peft_conv_params p = {
		.in = {1, 1, 2},
		.out = {1, 1, 2},
		.kernel_h = 1,
		.kernel_w = 1,
		.stride_h = 1,
		.stride_w = 1,
	};

	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_s8(&p, x, &ws, bias, out), PEFT_OK);
	PEFT_CHECK_NEAR(out[0], 1.5, TOL);
	PEFT_CHECK_NEAR(out[1], 15, TOL);
	PEFT_CHECK_EQ_INT(peft_conv2d_bwd_input_s8(&p, &ws, x, gi, false), PEFT_OK);
	PEFT_CHECK_NEAR(gi[0], 6.5, TOL);
	PEFT_CHECK_NEAR(gi[1], 9, TOL);
}

static void test_argument_errors(void)
{
	const float w[4] = {1, 2, 3, 4};
	const int8_t q[4] = {1, 2, 3, 4};
	const float scales[2] = {1, 1};
	float out[9];
	float gw[4];
	const float sentinel = 123.0f;

	for (int i = 0; i < 9; i++) {
		out[i] = sentinel;
	}
	for (int i = 0; i < 4; i++) {
		gw[i] = sentinel;
	}
	/* 3 rows, kernel 2, stride 1: out.h may be 2..4 (pad_bottom 0..2), not 5. */
	peft_conv_params p = valid_2x2;

	p.out.h = 5;
	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_f32(&p, in3x3, w, NULL, out), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_conv2d_bwd_input_f32(&p, w, in3x3, out, false), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_conv2d_bwd_weight_f32(&p, in3x3, in3x3, gw), PEFT_ERR_ARG);
	p = valid_2x2;
	p.out.w = 1;
	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_f32(&p, in3x3, w, NULL, out), PEFT_ERR_ARG);
	p = valid_2x2;
	p.stride_h = 0;
	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_f32(&p, in3x3, w, NULL, out), PEFT_ERR_ARG);
	p = valid_2x2;
	p.pad_left = -1;
	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_f32(&p, in3x3, w, NULL, out), PEFT_ERR_ARG);
	p = valid_2x2;
	p.in.c = 0;
	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_f32(&p, in3x3, w, NULL, out), PEFT_ERR_ARG);

	/* NULL pointers. */
	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_f32(NULL, in3x3, w, NULL, out), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_f32(&valid_2x2, NULL, w, NULL, out), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_f32(&valid_2x2, in3x3, NULL, NULL, out), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_f32(&valid_2x2, in3x3, w, NULL, NULL), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_conv2d_bwd_bias_f32(NULL, in3x3, gw), PEFT_ERR_ARG);

	/* scale_count must be 1 or out.c (1 here). */
	peft_weights_s8 ws = {q, scales, 2};

	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_s8(&valid_2x2, in3x3, &ws, NULL, out), PEFT_ERR_ARG);
	ws.scale_count = 0;
	PEFT_CHECK_EQ_INT(peft_conv2d_bwd_input_s8(&valid_2x2, &ws, in3x3, out, true),
			  PEFT_ERR_ARG);
	ws.scale_count = 1;
	ws.data = NULL;
	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_s8(&valid_2x2, in3x3, &ws, NULL, out), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_conv2d_fwd_s8(&valid_2x2, in3x3, NULL, NULL, out), PEFT_ERR_ARG);

	/* Nothing was written by any rejected call. */
	for (int i = 0; i < 9; i++) {
		PEFT_CHECK(memcmp(&out[i], &sentinel, sizeof(float)) == 0);
	}
	for (int i = 0; i < 4; i++) {
		PEFT_CHECK(memcmp(&gw[i], &sentinel, sizeof(float)) == 0);
	}
}

int main(void)
{
	test_valid_forward();
	test_valid_backward();
	test_same_stride2();
	test_same_leading_pad();
	test_per_channel_scales();
	test_argument_errors();
	return 0;
}
