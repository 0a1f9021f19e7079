/*
 * Minimal Cortex-M4F start-up for QEMU's mps2-an386: vector table, .data copy,
 * .bss zeroing, FPU enable, semihosting (newlib rdimon) for printf and exit.
 */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __StackTop;
extern int main(void);
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);

void Reset_Handler(void);
void _init(void);
void _fini(void);

/* crti.o is left out by -nostartfiles, but __libc_init_array calls these. */
void _init(void)
{
}

void _fini(void)
{
}

static void fault_handler(void)
{
	/* A fault stops QEMU at a breakpoint rather than looping silently. */
	for (;;) {
		__asm volatile("bkpt #0");
	}
}

__attribute__((section(".isr_vector"), used)) const void *const peft_cm4_vectors[16] = {
	&__StackTop,
	(void *)Reset_Handler,
	(void *)fault_handler,
	(void *)fault_handler,
	(void *)fault_handler,
	(void *)fault_handler,
	(void *)fault_handler,
	0,
	0,
	0,
	0,
	(void *)fault_handler,
	(void *)fault_handler,
	0,
	(void *)fault_handler,
	(void *)fault_handler,
};

__attribute__((noreturn)) void Reset_Handler(void)
{
	/* CPACR: full access to CP10/CP11. It must precede the first FP
	 * instruction, or QEMU (like the chip) takes a UsageFault. */
	*(volatile uint32_t *)0xE000ED88 |= (0xFu << 20);
	__asm volatile("dsb\n isb");

	uint32_t *src = &__etext;
	uint32_t *dst = &__data_start__;

	while (dst < &__data_end__) {
		*dst++ = *src++;
	}
	for (dst = &__bss_start__; dst < &__bss_end__;) {
		*dst++ = 0;
	}
	initialise_monitor_handles();
	__libc_init_array();
	exit(main());
}
