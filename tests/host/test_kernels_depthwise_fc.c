/* DEPTHWISE_CONV_2D and FULLY_CONNECTED kernels on hand-computed cases,
 * accumulate semantics and argument errors. */
#include <stddef.h>

#include "peft/peft_kernels.h"
#include "peft_test.h"

#define TOL 1e-5

/* 2x2 input, 2 channels: channel 0 = {1, 2, 3, 4}, channel 1 = {5, 6, 7, 8}
 * (interleaved, NHWC). 2x2 kernel, VALID -> one pixel. */
static const float dw_in[8] = {1, 5, 2, 6, 3, 7, 4, 8};
static const peft_conv_params dw_p = {
	.in = {2, 2, 2},
	.out = {1, 1, 2},
	.kernel_h = 2,
	.kernel_w = 2,
	.stride_h = 1,
	.stride_w = 1,
};

static void test_depthwise(void)
{
	/* Kernel [kh][kw][c]: channel 0 all ones, channel 1 = {1, -1, 1, -1}.
	 * out = {1 + 2 + 3 + 4, 5 - 6 + 7 - 8} = {10, -2}, + bias {1, 0}. */
	const float w[8] = {1, 1, 1, -1, 1, 1, 1, -1};
	const float bias[2] = {1, 0};
	float out[2];

	PEFT_CHECK_EQ_INT(peft_depthwise_conv2d_fwd_f32(&dw_p, dw_in, w, bias, out), PEFT_OK);
	PEFT_CHECK_NEAR(out[0], 11, TOL);
	PEFT_CHECK_NEAR(out[1], -2, TOL);

	/* int8: the same taps times 4 (channel 0) and 2 (channel 1) with scales
	 * {0.25, 0.5}: per-channel scales give back the float kernel. */
	const int8_t q[8] = {4, 2, 4, -2, 4, 2, 4, -2};
	const float scales[2] = {0.25f, 0.5f};
	const peft_weights_s8 ws = {q, scales, 2};

	PEFT_CHECK_EQ_INT(peft_depthwise_conv2d_fwd_s8(&dw_p, dw_in, &ws, NULL, out), PEFT_OK);
	PEFT_CHECK_NEAR(out[0], 10, TOL);
	PEFT_CHECK_NEAR(out[1], -2, TOL);

	/* grad_out {1, 10}: grad_in[y][x][c] = w[y][x][c] * g[c]. */
	const float g[2] = {1, 10};
	float gi[8];

	PEFT_CHECK_EQ_INT(peft_depthwise_conv2d_bwd_input_s8(&dw_p, &ws, g, gi, false), PEFT_OK);
	PEFT_CHECK_NEAR(gi[0], 1, TOL);
	PEFT_CHECK_NEAR(gi[1], 10, TOL);
	PEFT_CHECK_NEAR(gi[3], -10, TOL);
	PEFT_CHECK_EQ_INT(peft_depthwise_conv2d_bwd_input_f32(&dw_p, w, g, gi, true), PEFT_OK);
	PEFT_CHECK_NEAR(gi[3], -20, TOL);

	/* grad_w[y][x][c] += in[y][x][c] * g[c]; grad_bias[c] += g[c]. */
	float gw[8] = {0};
	float gb[2] = {1, 1};

	PEFT_CHECK_EQ_INT(peft_depthwise_conv2d_bwd_weight_f32(&dw_p, dw_in, g, gw), PEFT_OK);
	PEFT_CHECK_NEAR(gw[0], 1, TOL);
	PEFT_CHECK_NEAR(gw[7], 80, TOL);
	PEFT_CHECK_EQ_INT(peft_depthwise_conv2d_bwd_bias_f32(&dw_p.out, g, gb), PEFT_OK);
	PEFT_CHECK_NEAR(gb[0], 2, TOL);
	PEFT_CHECK_NEAR(gb[1], 11, TOL);

	/* Depth multiplier 1 only: in.c must equal out.c. */
	peft_conv_params bad = dw_p;

	bad.out.c = 1;
	PEFT_CHECK_EQ_INT(peft_depthwise_conv2d_fwd_f32(&bad, dw_in, w, NULL, out), PEFT_ERR_ARG);
	PEFT_CHECK_NEAR(out[0], 10, TOL); /* untouched */
	const peft_weights_s8 three = {q, scales, 3};

	PEFT_CHECK_EQ_INT(peft_depthwise_conv2d_fwd_s8(&dw_p, dw_in, &three, NULL, out),
			  PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_depthwise_conv2d_bwd_weight_f32(&dw_p, NULL, g, gw), PEFT_ERR_ARG);
}

/* W = [[1, 2, 3], [0, -1, 1]], bias {0.5, -0.5}, rows x = [1, 1, 1], [2, 0, -1]:
 * row 0 -> {6.5, -0.5}; row 1 -> {2 - 3 + 0.5, -1 - 0.5} = {-0.5, -1.5}. */
static void test_fully_connected(void)
{
	const peft_fc_params p = {.rows = 2, .in_features = 3, .out_features = 2};
	const float w[6] = {1, 2, 3, 0, -1, 1};
	const float bias[2] = {0.5f, -0.5f};
	const float x[6] = {1, 1, 1, 2, 0, -1};
	float out[4];

	PEFT_CHECK_EQ_INT(peft_fc_fwd_f32(&p, x, w, bias, out), PEFT_OK);
	PEFT_CHECK_NEAR(out[0], 6.5, TOL);
	PEFT_CHECK_NEAR(out[1], -0.5, TOL);
	PEFT_CHECK_NEAR(out[2], -0.5, TOL);
	PEFT_CHECK_NEAR(out[3], -1.5, TOL);

	/* int8 2 * W with one scale 0.5. */
	const int8_t q[6] = {2, 4, 6, 0, -2, 2};
	const float scale[1] = {0.5f};
	const peft_weights_s8 ws = {q, scale, 1};

	PEFT_CHECK_EQ_INT(peft_fc_fwd_s8(&p, x, &ws, bias, out), PEFT_OK);
	PEFT_CHECK_NEAR(out[0], 6.5, TOL);
	PEFT_CHECK_NEAR(out[3], -1.5, TOL);

	/* grad_out = identity rows: grad_in row r = W[r]; grad_w[o] += x[o];
	 * grad_bias += {1, 1}. */
	const float g[4] = {1, 0, 0, 1};
	float gi[6];
	float gw[6] = {0};
	float gb[2] = {0};

	PEFT_CHECK_EQ_INT(peft_fc_bwd_input_f32(&p, w, g, gi, false), PEFT_OK);
	for (int i = 0; i < 6; i++) {
		PEFT_CHECK_NEAR(gi[i], w[i], TOL);
	}
	PEFT_CHECK_EQ_INT(peft_fc_bwd_input_s8(&p, &ws, g, gi, true), PEFT_OK);
	for (int i = 0; i < 6; i++) {
		PEFT_CHECK_NEAR(gi[i], 2 * w[i], TOL);
	}
	PEFT_CHECK_EQ_INT(peft_fc_bwd_weight_f32(&p, x, g, gw), PEFT_OK);
	for (int i = 0; i < 6; i++) {
		PEFT_CHECK_NEAR(gw[i], x[i], TOL);
	}
	PEFT_CHECK_EQ_INT(peft_fc_bwd_bias_f32(&p, g, gb), PEFT_OK);
	PEFT_CHECK_NEAR(gb[0], 1, TOL);
	PEFT_CHECK_NEAR(gb[1], 1, TOL);

	/* Errors: no rows, NULL, one scale per output feature or one in all. */
	peft_fc_params bad = p;

	bad.rows = 0;
	PEFT_CHECK_EQ_INT(peft_fc_fwd_f32(&bad, x, w, bias, out), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_fc_bwd_bias_f32(NULL, g, gb), PEFT_ERR_ARG);
	const peft_weights_s8 three = {q, scale, 3};

	PEFT_CHECK_EQ_INT(peft_fc_bwd_input_s8(&p, &three, g, gi, false), PEFT_ERR_ARG);
	PEFT_CHECK_NEAR(gi[0], 2, TOL); /* untouched */
	PEFT_CHECK_NEAR(gb[0], 1, TOL);
}

int main(void)
{
	test_depthwise();
	test_fully_connected();
	return 0;
}
