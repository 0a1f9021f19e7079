/* peft_fc_s8s8_dot.h's loops with the DSP extension (ACLE intrinsics): two
 * weight words of outputs o and o + 1 (4 input features each) become the 4
 * features' int16 pairs with 2 PKHs and 4 SXTB16s, and each SMLAD adds two
 * products. */
#include <arm_acle.h>
#include <string.h>

#include "../peft_fc_s8s8_dot.h"

#if !defined(__ARM_FEATURE_DSP)
#error "dsp/peft_fc_s8s8_dot.c needs the DSP extension; the build picks portable/ otherwise"
#endif

/* GCC 12's <arm_acle.h> has no PKHBT/PKHTB, and GCC folds neither the packing
 * nor a rotation into SXTB16 (2 or 3 instructions each): one each here. */
static inline uint32_t low_halves(uint32_t a, uint32_t b) /* a[15:0], b[15:0] */
{
	uint32_t r;

	__asm("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
	return r;
}

static inline uint32_t high_halves(uint32_t a, uint32_t b) /* a[31:16], b[31:16] */
{
	uint32_t r;

	__asm("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
	return r;
}

static inline int16x2_t odd_bytes(uint32_t v) /* bytes 1 and 3, sign-extended */
{
	int16x2_t r;

	__asm("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
	return r;
}

static inline uint32_t word(const void *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline int16x2_t pair(const int16_t *p)
{
	int16x2_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void put_pair(int16_t *p, int16x2_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* The 4 features' pairs of outputs whose weight words are x and y. */
static inline void widen_pair(uint32_t x, uint32_t y, int16_t *cols)
{
	const uint32_t lo = low_halves(x, y), hi = high_halves(x, y);

	put_pair(cols, __sxtb16(lo));
	put_pair(cols + 2, odd_bytes(lo));
	put_pair(cols + 4, __sxtb16(hi));
	put_pair(cols + 6, odd_bytes(hi));
}

void peft_fc_s8s8_widen4(int32_t n_out, const int8_t *w, int32_t n_in, int16_t *cols)
{
	const int8_t *end = w + (n_out - n_out % 2) * n_in;

	for (; w < end; w += 2 * n_in, cols += 8) {
		widen_pair(word(w), word(w + n_in), cols);
	}
	if (n_out % 2 != 0) {
		widen_pair(word(w), 0, cols);
	}
}

void peft_fc_s8s8_dot4(int32_t n, const int16_t *cols, const int16_t *q, int32_t *acc)
{
	int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
	const int16_t *end = q + n;

	while (q < end) {
		const int16x2_t g = pair(q);

		a0 = __smlad(pair(cols), g, a0);
		a1 = __smlad(pair(cols + 2), g, a1);
		a2 = __smlad(pair(cols + 4), g, a2);
		a3 = __smlad(pair(cols + 6), g, a3);
		q += 2;
		cols += 8;
	}
	acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

void peft_fc_s8s8_dot4x2(int32_t n, const int16_t *cols, const int16_t *q2, int32_t *acc0,
			 int32_t *acc1)
{
	int32_t a0 = acc0[0], a1 = acc0[1], a2 = acc0[2], a3 = acc0[3];
	int32_t b0 = acc1[0], b1 = acc1[1], b2 = acc1[2], b3 = acc1[3];
	const int16_t *end = q2 + 2 * n;

	/* One pair of outputs per iteration: the 8 sums, a weight pair, the two
	 * rows' gradient pairs and 3 pointers take all 14 registers. */
	while (q2 < end) {
		const int16x2_t g = pair(q2), h = pair(q2 + 2);
		int16x2_t v = pair(cols);

		a0 = __smlad(v, g, a0);
		b0 = __smlad(v, h, b0);
		v = pair(cols + 2);
		a1 = __smlad(v, g, a1);
		b1 = __smlad(v, h, b1);
		v = pair(cols + 4);
		a2 = __smlad(v, g, a2);
		b2 = __smlad(v, h, b2);
		v = pair(cols + 6);
		a3 = __smlad(v, g, a3);
		b3 = __smlad(v, h, b3);
		q2 += 4;
		cols += 8;
	}
	acc0[0] = a0, acc0[1] = a1, acc0[2] = a2, acc0[3] = a3;
	acc1[0] = b0, acc1[1] = b1, acc1[2] = b2, acc1[3] = b3;
}

void peft_fc_s8s8_dot4_direct(int32_t n_pairs, const int8_t *w, int32_t n_in, const int16_t *q,
			      int32_t *acc)
{
	int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
	const int16_t *end = q + 2 * n_pairs;

	while (q < end) {
		const uint32_t x = word(w), y = word(w + n_in);
		const int16x2_t g = pair(q);
		const uint32_t lo = low_halves(x, y), hi = high_halves(x, y);

		a0 = __smlad(__sxtb16(lo), g, a0);
		a1 = __smlad(odd_bytes(lo), g, a1);
		a2 = __smlad(__sxtb16(hi), g, a2);
		a3 = __smlad(odd_bytes(hi), g, a3);
		q += 2;
		w += 2 * n_in;
	}
	acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}
