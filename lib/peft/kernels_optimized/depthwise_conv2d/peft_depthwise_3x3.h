/* The 3 x 3 inner loops of the optimized depthwise kernels (private to this
 * folder): two channels at a time, their 18 taps (or 18 weight-gradient sums)
 * held in registers while a run of pixels streams past, read in place from
 * NHWC (row stride rs, tap stride cs, pixel step `step`, all in floats). */
#ifndef PEFT_DEPTHWISE_3X3_H
#define PEFT_DEPTHWISE_3X3_H

#include <stdbool.h>
#include <stdint.h>

/* For n pixels: y_c = sum over taps t of w[t * 2 + c] * x(t), c = 0, 1, with x(t)
 * the window's tap t (row-major) at p + (t / 3) * rs + (t % 3) * cs + c, then
 * out[c] = (add ? out[c] : 0) + y_c * scale[c] + shift[c]. Taps add in row-major
 * order. */
static inline void peft_dw3x3_pair(int32_t n, const float *p, int32_t rs, int32_t cs, int32_t step,
				   const float *w, const float *scale, const float *shift, bool add,
				   float *out, int32_t out_step)
{
	const float a0 = w[0], a1 = w[2], a2 = w[4], a3 = w[6], a4 = w[8], a5 = w[10];
	const float a6 = w[12], a7 = w[14], a8 = w[16];
	const float b0 = w[1], b1 = w[3], b2 = w[5], b3 = w[7], b4 = w[9], b5 = w[11];
	const float b6 = w[13], b7 = w[15], b8 = w[17];
	const float sa = scale[0], sb = scale[1], ta = shift[0], tb = shift[1];

	for (int32_t i = 0; i < n; i++) {
		const float *r0 = p;
		const float *r1 = p + rs;
		const float *r2 = r1 + rs;
		const float *q0 = r0 + cs, *q1 = r1 + cs, *q2 = r2 + cs;
		float ya = r0[0] * a0;
		float yb = r0[1] * b0;

		ya += q0[0] * a1;
		yb += q0[1] * b1;
		ya += q0[cs] * a2;
		yb += q0[cs + 1] * b2;
		ya += r1[0] * a3;
		yb += r1[1] * b3;
		ya += q1[0] * a4;
		yb += q1[1] * b4;
		ya += q1[cs] * a5;
		yb += q1[cs + 1] * b5;
		ya += r2[0] * a6;
		yb += r2[1] * b6;
		ya += q2[0] * a7;
		yb += q2[1] * b7;
		ya += q2[cs] * a8;
		yb += q2[cs + 1] * b8;
		ya = ya * sa + ta;
		yb = yb * sb + tb;
		out[0] = add ? out[0] + ya : ya;
		out[1] = add ? out[1] + yb : yb;
		p += step;
		out += out_step;
	}
}

/* For n pixels: acc[t * 2 + c] += x(t) * g[c] (x(t) as above, g advancing by
 * g_step): the weight gradient's 18 sums of one channel pair. */
static inline void peft_dw3x3_weight_pair(int32_t n, const float *p, int32_t rs, int32_t cs,
					  int32_t step, const float *g, int32_t g_step, float *acc)
{
	float a0 = acc[0], a1 = acc[2], a2 = acc[4], a3 = acc[6], a4 = acc[8], a5 = acc[10];
	float a6 = acc[12], a7 = acc[14], a8 = acc[16];
	float b0 = acc[1], b1 = acc[3], b2 = acc[5], b3 = acc[7], b4 = acc[9], b5 = acc[11];
	float b6 = acc[13], b7 = acc[15], b8 = acc[17];

	for (int32_t i = 0; i < n; i++) {
		const float *r0 = p;
		const float *r1 = p + rs;
		const float *r2 = r1 + rs;
		const float *q0 = r0 + cs, *q1 = r1 + cs, *q2 = r2 + cs;
		const float ga = g[0], gb = g[1];

		a0 += r0[0] * ga;
		b0 += r0[1] * gb;
		a1 += q0[0] * ga;
		b1 += q0[1] * gb;
		a2 += q0[cs] * ga;
		b2 += q0[cs + 1] * gb;
		a3 += r1[0] * ga;
		b3 += r1[1] * gb;
		a4 += q1[0] * ga;
		b4 += q1[1] * gb;
		a5 += q1[cs] * ga;
		b5 += q1[cs + 1] * gb;
		a6 += r2[0] * ga;
		b6 += r2[1] * gb;
		a7 += q2[0] * ga;
		b7 += q2[1] * gb;
		a8 += q2[cs] * ga;
		b8 += q2[cs + 1] * gb;
		p += step;
		g += g_step;
	}
	acc[0] = a0, acc[2] = a1, acc[4] = a2, acc[6] = a3, acc[8] = a4, acc[10] = a5;
	acc[12] = a6, acc[14] = a7, acc[16] = a8;
	acc[1] = b0, acc[3] = b1, acc[5] = b2, acc[7] = b3, acc[9] = b4, acc[11] = b5;
	acc[13] = b6, acc[15] = b7, acc[17] = b8;
}

#endif /* PEFT_DEPTHWISE_3X3_H */
