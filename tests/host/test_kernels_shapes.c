/* The build's kernels (the optimized backend by default) on MobileNet-sized
 * shapes, every conv / depthwise / fc pass, against naive loops written here
 * from the definitions in peft_kernels.h (in double). Larger than the other C
 * tests so that the blocked paths, their tails and borders all run, also under
 * ASan + UBSan, with exact-size heap buffers so that a read past an end is
 * caught. Tolerance: 1e-5 of the largest reference magnitude (float sums). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peft/peft_kernels.h"
#include "peft_test.h"

static uint32_t seed = 12345u;

static float uniform(void)
{
	seed = seed * 1664525u + 1013904223u;
	return (float)(seed >> 8) / 8388608.0f - 1.0f;
}

static float *floats(int32_t n)
{
	float *a = malloc(sizeof(float) * (size_t)n);

	PEFT_CHECK(a != NULL);
	for (int32_t i = 0; i < n; i++) {
		a[i] = uniform();
	}
	return a;
}

static int8_t *int8s(int32_t n)
{
	int8_t *a = malloc((size_t)n);

	PEFT_CHECK(a != NULL);
	for (int32_t i = 0; i < n; i++) {
		a[i] = (int8_t)(127.0f * uniform());
	}
	return a;
}

static void check_close(const float *got, const double *want, int32_t n)
{
	double top = 1e-12;

	for (int32_t i = 0; i < n; i++) {
		top = fabs(want[i]) > top ? fabs(want[i]) : top;
	}
	for (int32_t i = 0; i < n; i++) {
		PEFT_CHECK_NEAR(got[i], want[i], 1e-5 * top);
	}
}

/* Input position of output o through tap k, or -1 outside the input. */
static int32_t tap_pos(int32_t o, int32_t k, int32_t stride, int32_t pad, int32_t in_n)
{
	const int32_t i = o * stride - pad + k;

	return i >= 0 && i < in_n ? i : -1;
}

static void conv_case(const peft_conv_params *p, bool depthwise)
{
	const int32_t ic = p->in.c, oc = p->out.c, kh = p->kernel_h, kw = p->kernel_w;
	const int32_t n_in = p->in.h * p->in.w * ic, n_out = p->out.h * p->out.w * oc;
	const int32_t n_w = depthwise ? kh * kw * oc : oc * kh * kw * ic;
	float *x = floats(n_in), *g = floats(n_out), *wf = floats(n_w), *scales = floats(oc);
	int8_t *q = int8s(n_w);
	float *y = floats(n_out), *gi = floats(n_in), *gw = calloc((size_t)n_w, sizeof(float));
	double *ry = calloc((size_t)n_out, sizeof(double)),
	       *rgi = calloc((size_t)n_in, sizeof(double));
	double *rgw = calloc((size_t)n_w, sizeof(double));

	for (int32_t c = 0; c < oc; c++) {
		scales[c] = 0.01f + 0.005f * scales[c];
	}
	for (int dtype = 0; dtype < 2; dtype++) { /* 0: int8 weights, 1: float */
		const peft_weights_s8 w8 = {q, scales, oc};

		memset(ry, 0, sizeof(double) * (size_t)n_out);
		memset(rgi, 0, sizeof(double) * (size_t)n_in);
		memset(rgw, 0, sizeof(double) * (size_t)n_w);
		for (int32_t oy = 0; oy < p->out.h; oy++) {
			for (int32_t ox = 0; ox < p->out.w; ox++) {
				for (int32_t o = 0; o < oc; o++) {
					const int32_t yi = (oy * p->out.w + ox) * oc + o;

					for (int32_t ky = 0; ky < kh; ky++) {
						const int32_t iy = tap_pos(oy, ky, p->stride_h,
									   p->pad_top, p->in.h);

						for (int32_t kx = 0; kx < kw && iy >= 0; kx++) {
							const int32_t ix =
								tap_pos(ox, kx, p->stride_w,
									p->pad_left, p->in.w);

							for (int32_t c = depthwise ? o : 0;
							     ix >= 0 &&
							     c < (depthwise ? o + 1 : ic);
							     c++) {
								const int32_t wi =
									depthwise ? (ky * kw +
										     kx) * oc +
											    o
										  : ((o * kh + ky) *
											     kw +
										     kx) * ic +
											    c;
								const int32_t xi =
									(iy * p->in.w + ix) * ic +
									c;
								const double wv =
									dtype == 0
										? (double)q[wi] *
											  scales[o]
										: wf[wi];

								ry[yi] += wv * x[xi];
								rgi[xi] += wv * g[yi];
								rgw[wi] += (double)x[xi] * g[yi];
							}
						}
					}
				}
			}
		}
		if (depthwise) {
			PEFT_CHECK(dtype == 0 ? peft_depthwise_conv2d_fwd_s8(p, x, &w8, NULL, y) ==
							PEFT_OK
					      : peft_depthwise_conv2d_fwd_f32(p, x, wf, NULL, y) ==
							PEFT_OK);
			PEFT_CHECK(dtype == 0 ? peft_depthwise_conv2d_bwd_input_s8(p, &w8, g, gi,
										   false) == PEFT_OK
					      : peft_depthwise_conv2d_bwd_input_f32(
							p, wf, g, gi, false) == PEFT_OK);
		} else {
			PEFT_CHECK(dtype == 0 ? peft_conv2d_fwd_s8(p, x, &w8, NULL, y) == PEFT_OK
					      : peft_conv2d_fwd_f32(p, x, wf, NULL, y) == PEFT_OK);
			PEFT_CHECK(dtype == 0 ? peft_conv2d_bwd_input_s8(p, &w8, g, gi, false) ==
							PEFT_OK
					      : peft_conv2d_bwd_input_f32(p, wf, g, gi, false) ==
							PEFT_OK);
		}
		check_close(y, ry, n_out);
		check_close(gi, rgi, n_in);
	}
	PEFT_CHECK(depthwise ? peft_depthwise_conv2d_bwd_weight_f32(p, x, g, gw) == PEFT_OK
			     : peft_conv2d_bwd_weight_f32(p, x, g, gw) == PEFT_OK);
	check_close(gw, rgw, n_w);
	free(x), free(g), free(wf), free(scales), free(q), free(y), free(gi), free(gw);
	free(ry), free(rgi), free(rgw);
}

static void fc_case(int32_t rows, int32_t n_in, int32_t n_out)
{
	const peft_fc_params p = {rows, n_in, n_out};
	float *x = floats(rows * n_in), *g = floats(rows * n_out), *wf = floats(n_out * n_in);
	float *scales = floats(n_out), *y = floats(rows * n_out), *gi = floats(rows * n_in);
	float *gw = calloc((size_t)(n_out * n_in), sizeof(float));
	int8_t *q = int8s(n_out * n_in);
	const int32_t scratch_bytes = peft_fc_bwd_input_s8s8_get_buffer_size(&p);
	int16_t *scratch = malloc((size_t)scratch_bytes);
	double *ry = calloc((size_t)(rows * n_out), sizeof(double));
	double *rgi = calloc((size_t)(rows * n_in), sizeof(double));
	double *rgw = calloc((size_t)(n_out * n_in), sizeof(double));
	const peft_weights_s8 w8 = {q, scales, n_out};

	for (int32_t o = 0; o < n_out; o++) {
		scales[o] = 0.01f + 0.005f * scales[o];
	}
	for (int32_t r = 0; r < rows; r++) {
		for (int32_t o = 0; o < n_out; o++) {
			for (int32_t i = 0; i < n_in; i++) {
				const double wv = (double)q[o * n_in + i] * scales[o];

				ry[r * n_out + o] += wv * x[r * n_in + i];
				rgi[r * n_in + i] += wv * g[r * n_out + o];
				rgw[o * n_in + i] += (double)g[r * n_out + o] * x[r * n_in + i];
			}
		}
	}
	PEFT_CHECK(peft_fc_fwd_s8(&p, x, &w8, NULL, y) == PEFT_OK);
	check_close(y, ry, rows * n_out);
	PEFT_CHECK(peft_fc_bwd_input_s8(&p, &w8, g, gi, false) == PEFT_OK);
	check_close(gi, rgi, rows * n_in);
	PEFT_CHECK(peft_fc_bwd_weight_f32(&p, x, g, gw) == PEFT_OK);
	check_close(gw, rgw, n_out * n_in);
	/* The int8 path: within the quantization's half step of the float gradient
	 * (test_kernels_int8_path.py checks it exactly against its own model). */
	PEFT_CHECK(peft_fc_bwd_input_s8s8(&p, &w8, g, gi, false, scratch, scratch_bytes) ==
		   PEFT_OK);
	for (int32_t r = 0; r < rows; r++) {
		double m = 0.0;

		for (int32_t o = 0; o < n_out; o++) {
			const double h = fabs((double)g[r * n_out + o] * scales[o]);

			m = h > m ? h : m;
		}
		for (int32_t i = 0; i < n_in; i++) {
			double bound = 0.0;

			for (int32_t o = 0; o < n_out; o++) {
				bound += fabs((double)q[o * n_in + i]);
			}
			PEFT_CHECK_NEAR(gi[r * n_in + i], rgi[r * n_in + i],
					0.5 * m / 127.0 * bound * 1.001 + 1e-6);
		}
	}
	free(x), free(g), free(wf), free(scales), free(y), free(gi), free(gw), free(q),
		free(scratch);
	free(ry), free(rgi), free(rgw);
}

int main(void)
{
	const peft_conv_params convs[] = {
		{{32, 32, 1}, {16, 16, 8}, 3, 3, 2, 2, 0, 0}, /* the stem */
		{{8, 8, 16}, {8, 8, 16}, 3, 3, 1, 1, 1, 1},
		{{9, 7, 5}, {5, 4, 6}, 3, 3, 2, 2, 1, 1},
		{{8, 8, 32}, {8, 8, 32}, 1, 1, 1, 1, 0, 0}, /* pointwise */
		{{6, 11, 3}, {6, 11, 10}, 5, 3, 1, 1, 2, 1},
	};
	const peft_conv_params depthwise[] = {
		{{8, 8, 32}, {8, 8, 32}, 3, 3, 1, 1, 1, 1},
		{{8, 8, 32}, {4, 4, 32}, 3, 3, 2, 2, 0, 0},
		{{7, 9, 5}, {7, 9, 5}, 3, 3, 1, 1, 1, 1},
		{{6, 6, 4}, {6, 6, 4}, 5, 5, 1, 1, 2, 2},
	};

	for (size_t i = 0; i < sizeof(convs) / sizeof(convs[0]); i++) {
		conv_case(&convs[i], false);
	}
	for (size_t i = 0; i < sizeof(depthwise) / sizeof(depthwise[0]); i++) {
		conv_case(&depthwise[i], true);
	}
	fc_case(1, 256, 10);
	fc_case(16, 256, 10);
	fc_case(7, 33, 5);
	fc_case(64, 32, 32);
	printf("test_kernels_shapes: ok\n");
	return 0;
}
