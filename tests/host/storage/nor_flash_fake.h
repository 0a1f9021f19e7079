/*
 * A NOR-flash fake for the storage tests, with power cuts.
 *
 * Behaves as NOR flash does: erased bytes read 0xFF; erase works on whole pages;
 * a write covers whole write blocks at aligned offsets, only clears bits, and is
 * refused (counted as a violation) where a block was written since its erase.
 * A planned power cut stops the device before a given call, in the middle of an
 * erase (the page being erased is left half-erased), or inside a write (the bytes
 * before the cut are written, the rest of that write block is torn: some of its
 * bits programmed, some not). After the cut every call fails, as if the power
 * were gone, until nor_fake_power_on().
 */
#ifndef NOR_FLASH_FAKE_H
#define NOR_FLASH_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peft/storage/peft_flash.h"

enum nor_op {
	NOR_READ,
	NOR_WRITE,
	NOR_ERASE
};

enum nor_cut_kind {
	NOR_CUT_NONE,
	NOR_CUT_BEFORE_CALL, /* call number `call` does nothing */
	NOR_CUT_IN_ERASE,    /* call `call` (an erase) stops in its page number `at` */
	NOR_CUT_IN_WRITE,    /* call `call` (a write) stops after its byte number `at` */
};

struct nor_cut {
	enum nor_cut_kind kind;
	uint32_t call;
	uint32_t at;
};

#define NOR_LOG_MAX 32

struct nor_call {
	enum nor_op op;
	uint32_t offset; /* from the start of the device */
	uint32_t len;
};

struct nor_fake {
	uint8_t *mem;
	uint32_t size;
	uint32_t page;
	uint32_t block;
	bool *written; /* per write block: programmed since its last erase */
	struct nor_cut cut;
	bool dead;
	uint32_t calls; /* calls since the last nor_fake_power_on() */
	uint32_t pages_erased;
	uint32_t violations; /* contract violations: misaligned, double write, out of range */
	uint32_t rng;
	struct nor_call log[NOR_LOG_MAX];
	uint32_t n_log;
};

/* One partition of the device, as the storage library sees it. */
struct nor_region {
	struct peft_flash flash; /* first member */
	struct nor_fake *dev;
	uint32_t base;
};

/* mem: size bytes; written: size / block entries. Starts erased. */
void nor_fake_init(struct nor_fake *dev, uint8_t *mem, bool *written, uint32_t size, uint32_t page,
		   uint32_t block);
void nor_region_init(struct nor_region *r, struct nor_fake *dev, uint32_t base, uint32_t size);
/* Power back on: no cut planned, call counter and log cleared. */
void nor_fake_power_on(struct nor_fake *dev);

#endif /* NOR_FLASH_FAKE_H */
