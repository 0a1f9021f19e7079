/* The marker the plugin watches, and the log of which phase each call was. */
#include <stdio.h>

#include "peft_cm4.h"

#define PEFT_CM4_MAX_MARKS 256

static uint8_t mark_log[PEFT_CM4_MAX_MARKS];
static uint32_t mark_total;

__attribute__((noinline, used)) void peft_cm4_mark(uint32_t phase)
{
	/* Logged here (a few instructions inside the counted region, the same
	 * for every mark) so that the host can tell the phases apart. */
	if (mark_total < PEFT_CM4_MAX_MARKS) {
		mark_log[mark_total] = (uint8_t)phase;
	}
	mark_total++;
	__asm volatile("" ::: "memory");
}

void peft_cm4_print_marks(void)
{
	uint32_t n = mark_total < PEFT_CM4_MAX_MARKS ? mark_total : PEFT_CM4_MAX_MARKS;

	printf("marks:");
	for (uint32_t i = 0; i < n; i++) {
		printf(" %u", (unsigned)mark_log[i]);
	}
	printf("\n");
	if (mark_total > PEFT_CM4_MAX_MARKS) {
		printf("marks_dropped: %lu\n", (unsigned long)(mark_total - PEFT_CM4_MAX_MARKS));
	}
}
