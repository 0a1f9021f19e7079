/*
 * peft_icount: exact count of executed guest instructions for QEMU system
 * emulation (TCG plugin, API version 1), with phase marks.
 *
 * The firmware calls a marker function (peft_cm4_mark in cm4/fw/driver.c) at
 * each phase boundary. Every execution of the marker's first instruction writes
 * one line "mark <n> <count>" with the number of guest instructions executed
 * before it; the firmware prints which phase each mark was, so the cost of a
 * phase is the difference of two counts. Counts are instructions, not cycles:
 * QEMU models no pipeline, wait states or FPU latency, but the same binary and
 * input always give the same counts, whatever the host load.
 *
 * Arguments: mark=ADDR (marker address; the Thumb bit is ignored) and
 * out=PATH (report file; without it the report goes to QEMU's log, -d plugin).
 * Build: cc -O2 -fPIC -shared peft_icount.c -o libpeft_icount.so
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PEFT_ICOUNT_QEMU_HEADER
#include <qemu-plugin.h>
#else
#include "qemu_plugin_v1.h"
#endif

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

/* A Cortex-M has one vCPU, so one plain counter is exact (no atomics needed). */
static uint64_t executed;
static uint64_t mark_addr = UINT64_MAX;
static unsigned long mark_count;
static FILE *report;

static void emit(const char *line)
{
	if (report != NULL) {
		fputs(line, report);
		fflush(report); /* a guest that hangs still leaves its marks */
	} else {
		qemu_plugin_outs(line);
	}
}

static void on_mark(unsigned int vcpu, void *userdata)
{
	char line[96];

	(void)vcpu;
	(void)userdata;
	mark_count++;
	snprintf(line, sizeof(line), "mark %lu %" PRIu64 "\n", mark_count, executed);
	emit(line);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb);

	(void)id;
	for (size_t i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);

		/* The mark callback runs before this instruction's own increment,
		 * so a mark reports what ran strictly before the marker. */
		if ((qemu_plugin_insn_vaddr(insn) & ~1ull) == mark_addr) {
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS,
							       NULL);
		}
		qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
							   &executed, 1);
	}
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
	char line[96];

	(void)id;
	(void)userdata;
	snprintf(line, sizeof(line), "total %" PRIu64 "\n", executed);
	emit(line);
	if (report != NULL) {
		fclose(report);
		report = NULL;
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
		} else {
			fprintf(stderr, "peft_icount: unknown argument %s\n", argv[i]);
			return -1;
		}
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
