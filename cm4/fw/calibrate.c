/*
 * Calibration firmware: a loop of exactly two instructions per iteration
 * (subs + bne), repeated PEFT_CM4_LOOPS times between two marks. The count
 * between the marks must grow by exactly 2 per iteration: a check of the
 * plugin against a number known from the instruction set, not from QEMU.
 */
#include <stdio.h>

#include "peft_cm4.h"

#ifndef PEFT_CM4_LOOPS
#define PEFT_CM4_LOOPS 1000
#endif

int main(void);

int main(void)
{
	uint32_t n = PEFT_CM4_LOOPS;

	peft_cm4_mark(PEFT_CM4_REGION);
	__asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
	peft_cm4_mark(PEFT_CM4_REGION_END);
	peft_cm4_print_marks();
	printf("status: 0\n");
	return 0;
}
