/*
 * Check firmware for the int8 path: peft_fc_bwd_input_s8s8 on fixed data,
 * printed as the bit patterns of its results, so that the host can compare
 * the SMLAD build (dsp/) with the plain-C one (portable/) on the Cortex-M4.
 */
#include <stdio.h>
#include <string.h>

#include "peft/peft_kernels.h"
#include "peft_cm4.h"

#define ROWS  11
#define N_IN  37
#define N_OUT 29

static int8_t q[N_OUT * N_IN];
static float g[ROWS * N_OUT], gi[ROWS * N_IN], scales[N_OUT];
static int16_t scratch[2048] __attribute__((aligned(4)));

int main(void);

int main(void)
{
	const peft_fc_params p = {ROWS, N_IN, N_OUT};
	const peft_weights_s8 w = {q, scales, N_OUT};
	uint32_t seed = 7u;
	uint32_t sum = 0u;

	for (unsigned i = 0; i < sizeof(q); i++) {
		seed = seed * 1664525u + 1013904223u;
		q[i] = (int8_t)(seed >> 24);
	}
	for (unsigned i = 0; i < ROWS * N_OUT; i++) {
		seed = seed * 1664525u + 1013904223u;
		g[i] = (float)(int32_t)(seed >> 16) / 32768.0f - 1.0f;
	}
	for (unsigned i = 0; i < N_OUT; i++) {
		scales[i] = 0.001f * (float)(i + 1);
	}
	peft_cm4_mark(PEFT_CM4_REGION);
	peft_status st = peft_fc_bwd_input_s8s8(&p, &w, g, gi, false, scratch, sizeof(scratch));
	peft_cm4_mark(PEFT_CM4_REGION_END);

	for (unsigned i = 0; i < ROWS * N_IN; i++) {
		uint32_t bits;

		memcpy(&bits, &gi[i], sizeof(bits));
		sum = sum * 31u + bits;
	}
	peft_cm4_print_marks();
	printf("checksum: %lu\n", (unsigned long)sum);
	printf("status: %d\n", (int)st);
	return 0;
}
