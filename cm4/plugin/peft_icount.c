/*
 * peft_icount: exact count of executed guest instructions for QEMU system
 * emulation (TCG plugin, API version 1), with phase marks, and an estimate of
 * the Cortex-M4 cycles they take.
 *
 * The firmware calls a marker function (peft_cm4_mark in cm4/fw/mark.c) at
 * each phase boundary. Every execution of the marker's first instruction writes
 * one line "mark <n> <instructions> <cycles>" with the number of guest
 * instructions executed before it and their estimated cycles; the firmware
 * prints which phase each mark was, so the cost of a phase is the difference
 * of two counts. Instruction counts are exact: the same binary and input
 * always give the same counts, whatever the host load.
 *
 * Cycles are an ESTIMATE: each executed instruction is weighted with its
 * Cortex-M4 cost from the Cortex-M4 Technical Reference Manual (r0p1, tables
 * 3-1 and 7-1), with zero-wait-state memory and no bus contention:
 *   ALU, MUL, MLA, SMLAD and the other DSP multiplies, long multiplies,
 *   VADD/VSUB/VMUL/VNMUL/VABS/VNEG/VCVT/VCMP/VMOV/VMRS ......... 1
 *   SDIV/UDIV (2 to 12, by early termination; operands unseen) ... 7
 *   LDR/STR (any width, integer or VLDR/VSTR) ..................... 2, or 1
 *     when it directly follows another load/store single in the same
 *     translation block (the TRM's pipelined neighbours)
 *   LDRD/STRD ........................................................ 3
 *   LDM/STM/PUSH/POP/VLDM/VSTM/VPUSH/VPOP ............................ 1 + N
 *   VMLA/VMLS/VNMLA/VNMLS/VFMA/VFMS/VFNMA/VFNMS ...................... 3
 *   VDIV, VSQRT ...................................................... 14
 *   branches (B, Bcc, BL, BX, BLX, CBZ, CBNZ, TBB/TBH, POP/LDM/LDR pc,
 *     MOV/ADD pc) ................................................... 1, plus
 *     the pipeline refill P when taken: 1 for a 16-bit target, 2 for a
 *     word-aligned 32-bit target, 3 for an unaligned 32-bit one
 *   IT ............................................................... 1
 * A branch counts as taken when the next block executed does not start at its
 * fall-through address.
 *
 * Arguments: mark=ADDR (marker address; the Thumb bit is ignored),
 * out=PATH (report file; without it the report goes to QEMU's log, -d plugin)
 * and profile=PATH: at exit, one line "block <vaddr> <instructions>
 * <executions> <cycles>" per translated block (a block retranslated appears
 * again), for a per-function account (micropeft.eval.cm4.profile_functions);
 * profile_from=N and profile_to=M count only from the N-th mark to the M-th
 * (1-based; by default the whole run).
 * Build: cc -O2 -fPIC -shared peft_icount.c -o libpeft_icount.so
 */
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PEFT_ICOUNT_QEMU_HEADER
#include <qemu-plugin.h>
#else
#include "qemu_plugin_v1.h"
#endif

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

/* A Cortex-M has one vCPU, so plain counters are exact (no atomics needed). */
static uint64_t executed;
static uint64_t cycles;
static uint64_t mark_addr = UINT64_MAX;
static unsigned long mark_count;
static FILE *report;

enum {
	COST_DIV = 7,
	COST_FP_MAC = 3,
	COST_FP_DIV = 14
};

/* What the cycle model needs of one translation block. */
typedef struct block_info {
	uint64_t vaddr;
	uint64_t fallthrough; /* address after its last instruction */
	bool ends_in_branch;
	uint32_t refill; /* P, when a branch lands on this block */
	/* for profile=: */
	uint32_t n_insns;
	uint64_t cost;           /* cycles of one execution, refill excluded */
	uint64_t executions;     /* times it ran */
	uint64_t refills;        /* refill cycles of the taken branches landing on it */
	struct block_info *next; /* every block, newest first */
} block_info;

static const block_info *last_block;
static block_info *all_blocks;
static FILE *profile;
static unsigned long profile_from; /* marks that open and close the window */
static unsigned long profile_to = ULONG_MAX;
static bool profiling = true;

typedef enum {
	K_OTHER,
	K_LDST,
	K_BRANCH
} insn_kind;

static unsigned popcount16(unsigned v)
{
	unsigned n = 0;

	for (v &= 0xFFFFu; v != 0; v &= v - 1) {
		n++;
	}
	return n;
}

/* Cost of a 16-bit Thumb instruction. */
static unsigned cost16(unsigned hw, insn_kind *kind)
{
	*kind = K_OTHER;
	if ((hw & 0xFF00) == 0x4700) { /* BX, BLX (register) */
		*kind = K_BRANCH;
		return 1;
	}
	if ((hw & 0xFC00) == 0x4400) { /* ADD/MOV/CMP high registers: to PC is a branch */
		const unsigned rd = ((hw >> 4) & 8) | (hw & 7);

		if (rd == 15 && (hw & 0x0300) != 0x0100) {
			*kind = K_BRANCH;
		}
		return 1;
	}
	if ((hw & 0xF800) == 0x4800 || (hw & 0xF000) == 0x5000 || (hw & 0xE000) == 0x6000 ||
	    (hw & 0xE000) == 0x8000) { /* LDR literal, register, immediate, halfword, SP */
		*kind = K_LDST;
		return 2;
	}
	if ((hw & 0xFE00) == 0xB400) { /* PUSH */
		return 1 + popcount16(hw & 0x1FF);
	}
	if ((hw & 0xFE00) == 0xBC00) { /* POP, a branch when it loads PC */
		if (hw & 0x100) {
			*kind = K_BRANCH;
		}
		return 1 + popcount16(hw & 0x1FF);
	}
	if ((hw & 0xF500) == 0xB100) { /* CBZ, CBNZ */
		*kind = K_BRANCH;
		return 1;
	}
	if ((hw & 0xF000) == 0xC000) { /* STM, LDM */
		return 1 + popcount16(hw & 0xFF);
	}
	if ((hw & 0xF000) == 0xD000 && (hw & 0x0E00) != 0x0E00) { /* B<cond> */
		*kind = K_BRANCH;
		return 1;
	}
	if ((hw & 0xF800) == 0xE000) { /* B */
		*kind = K_BRANCH;
		return 1;
	}
	return 1;
}

/* Cost of a floating-point (cp10/cp11) instruction. */
static unsigned cost_fp(unsigned hw1, unsigned hw2, insn_kind *kind)
{
	if ((hw1 & 0x0E00) == 0x0C00) {         /* extension register load/store */
		if ((hw1 & 0x01E0) == 0x0040) { /* VMOV of two core registers */
			return 2;
		}
		if ((hw1 & 0x0120) == 0x0100) { /* VLDR, VSTR (P = 1, W = 0) */
			*kind = K_LDST;
			return 2;
		}
		return 1 + (hw2 & 0xFF); /* VLDM/VSTM/VPUSH/VPOP: imm8 is the word count */
	}
	if ((hw2 & 0x10) != 0) { /* VMOV core <-> single, VMRS, VMSR */
		return 1;
	}
	const unsigned opc1 = ((hw1 >> 5) & 4) | ((hw1 >> 4) & 3); /* bits 23, 21, 20 */

	switch (opc1) {
	case 0: /* VMLA, VMLS */
	case 1: /* VNMLA, VNMLS */
	case 5: /* VFNMA, VFNMS */
	case 6: /* VFMA, VFMS */
		return COST_FP_MAC;
	case 4: /* VDIV */
		return COST_FP_DIV;
	case 7: /* VSQRT is opc2 0001 with opc3 11; the rest (VMOV imm, VCVT...) 1 */
		return ((hw1 & 0xF) == 1 && ((hw2 >> 6) & 3) == 3) ? COST_FP_DIV : 1;
	default: /* VMUL, VNMUL, VADD, VSUB */
		return 1;
	}
}

/* Cost of a 32-bit Thumb instruction (hw1 first halfword). */
static unsigned cost32(unsigned hw1, unsigned hw2, insn_kind *kind)
{
	*kind = K_OTHER;
	if ((hw1 & 0xEC00) == 0xEC00 && (hw2 & 0x0E00) == 0x0A00) {
		return cost_fp(hw1, hw2, kind);
	}
	switch (hw1 >> 11) {
	case 0x1D: /* 11101 */
		if ((hw1 & 0x0600) == 0x0000) {
			if ((hw1 & 0x0040) == 0) { /* LDM/STM: a branch when it loads PC */
				if ((hw1 & 0x0010) && (hw2 & 0x8000)) {
					*kind = K_BRANCH;
				}
				return 1 + popcount16(hw2);
			}
			if ((hw1 & 0xFFF0) == 0xE8D0 && (hw2 & 0xFFE0) == 0xF000) { /* TBB, TBH */
				*kind = K_BRANCH;
				return 2;
			}
			return 3; /* LDRD, STRD, exclusives */
		}
		return 1; /* data processing (shifted register), other coprocessor */
	case 0x1E:        /* 11110 */
		if ((hw2 & 0x8000) == 0) {
			return 1; /* data processing (immediate) */
		}
		if ((hw2 & 0x4000) || (hw2 & 0x1000) ||
		    (hw1 & 0x0380) != 0x0380) { /* BL, B.W, B<cond>.W */
			*kind = K_BRANCH;
		}
		return 1;
	default:                                /* 11111 */
		if ((hw1 & 0x0600) == 0x0000) { /* load/store single; LDR pc is a branch */
			*kind = ((hw1 & 0x0010) && (hw2 >> 12) == 15) ? K_BRANCH : K_LDST;
			return 2;
		}
		if ((hw1 & 0xFFF0) == 0xFB90 || (hw1 & 0xFFF0) == 0xFBB0) { /* SDIV, UDIV */
			return COST_DIV;
		}
		return 1; /* data processing (register), multiplies, DSP */
	}
}

static void on_mark(unsigned int vcpu, void *userdata)
{
	char line[128];

	(void)vcpu;
	(void)userdata;
	mark_count++;
	profiling = mark_count >= profile_from && mark_count < profile_to;
	snprintf(line, sizeof(line), "mark %lu %" PRIu64 " %" PRIu64 "\n", mark_count, executed,
		 cycles);
	if (report != NULL) {
		fputs(line, report);
		fflush(report); /* a guest that hangs still leaves its marks */
	} else {
		qemu_plugin_outs(line);
	}
}

static void on_block(unsigned int vcpu, void *userdata)
{
	block_info *block = userdata;

	(void)vcpu;
	if (last_block != NULL && last_block->ends_in_branch &&
	    last_block->fallthrough != block->vaddr) {
		cycles += block->refill; /* the branch was taken */
		block->refills += profiling ? block->refill : 0;
	}
	block->executions += profiling ? 1 : 0;
	last_block = block;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	const size_t n = qemu_plugin_tb_n_insns(tb);
	block_info *block = calloc(1, sizeof(*block));
	bool prev_ldst = false;

	(void)id;
	if (block == NULL) {
		return;
	}
	block->vaddr = qemu_plugin_tb_vaddr(tb);
	block->n_insns = (uint32_t)n;
	block->next = all_blocks;
	all_blocks = block;
	for (size_t i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		const uint8_t *bytes = qemu_plugin_insn_data(insn);
		const size_t size = qemu_plugin_insn_size(insn);
		const uint64_t vaddr = qemu_plugin_insn_vaddr(insn);
		const unsigned hw1 = bytes[0] | (bytes[1] << 8);
		insn_kind kind = K_OTHER;
		unsigned cost;

		if (size == 4) {
			cost = cost32(hw1, bytes[2] | (bytes[3] << 8), &kind);
		} else {
			cost = cost16(hw1, &kind);
		}
		if (kind == K_LDST && prev_ldst) {
			cost = 1;
		}
		prev_ldst = kind == K_LDST;
		block->cost += cost;
		if (i == 0) {
			block->refill = size == 2 ? 1 : ((vaddr & 3) == 0 ? 2 : 3);
		}
		if (i + 1 == n) {
			block->fallthrough = vaddr + size;
			block->ends_in_branch = kind == K_BRANCH;
		}
		/* The mark callback runs before this instruction's own increments,
		 * so a mark reports what ran strictly before the marker. */
		if ((vaddr & ~1ull) == mark_addr) {
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark,
							       QEMU_PLUGIN_CB_NO_REGS, NULL);
		}
		qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
							   &executed, 1);
		qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
							   &cycles, cost);
	}
	qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS, block);
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
	char line[128];

	(void)id;
	(void)userdata;
	snprintf(line, sizeof(line), "total %" PRIu64 " %" PRIu64 "\n", executed, cycles);
	if (report != NULL) {
		fputs(line, report);
		fclose(report);
		report = NULL;
	} else {
		qemu_plugin_outs(line);
	}
	if (profile != NULL) {
		for (const block_info *b = all_blocks; b != NULL; b = b->next) {
			fprintf(profile, "block %#" PRIx64 " %" PRIu32 " %" PRIu64 " %" PRIu64 "\n",
				b->vaddr, b->n_insns, b->executions,
				b->executions * b->cost + b->refills);
		}
		fclose(profile);
		profile = NULL;
	}
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
					   char **argv)
{
	(void)info;
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "mark=", 5) == 0) {
			mark_addr = strtoull(argv[i] + 5, NULL, 0) & ~1ull;
		} else if (strncmp(argv[i], "out=", 4) == 0) {
			report = fopen(argv[i] + 4, "w");
			if (report == NULL) {
				fprintf(stderr, "peft_icount: cannot write %s\n", argv[i] + 4);
				return -1;
			}
		} else if (strncmp(argv[i], "profile_from=", 13) == 0) {
			profile_from = strtoul(argv[i] + 13, NULL, 0);
			profiling = profile_from == 0;
		} else if (strncmp(argv[i], "profile_to=", 11) == 0) {
			profile_to = strtoul(argv[i] + 11, NULL, 0);
		} else if (strncmp(argv[i], "profile=", 8) == 0) {
			profile = fopen(argv[i] + 8, "w");
			if (profile == NULL) {
				fprintf(stderr, "peft_icount: cannot write %s\n", argv[i] + 8);
				return -1;
			}
		} else {
			fprintf(stderr, "peft_icount: unknown argument %s\n", argv[i]);
			return -1;
		}
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
