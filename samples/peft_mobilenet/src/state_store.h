/*
 * Trained state in two flash slots (partitions peft_state0 / peft_state1).
 *
 * Each save goes to the slot that does not hold the newest valid state, with
 * a sequence number one above it. The slot is erased, the state body written,
 * and the state header (magic, lengths, CRC32, sequence) written last: until
 * that header is complete the slot reads as invalid, so a power cut at any
 * point of a save leaves the other slot's state in use.
 */
#ifndef STATE_STORE_H
#define STATE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <zephyr/storage/flash_map.h>

#include "peft/peft_state.h"
#include "peft/peft_status.h"
#include "peft/peft_trainer.h"

struct state_store {
	const struct flash_area *slot[2];
	const uint8_t *mapped[2]; /**< In-place view of each slot (see flash_map_view.h). */
	uint8_t *buf;             /**< RAM for exporting a state before it is written. */
	size_t buf_size;
	int newest;               /**< Slot of the newest valid state, -1 if none. */
	peft_state_meta meta;     /**< Its metadata. */
};

/** What state_store_load() found in one slot. */
struct state_slot_report {
	peft_status status; /**< PEFT_OK, or why the slot was not usable. */
	int erased;         /**< The slot holds nothing (never written). */
	peft_state_meta meta;
};

/**
 * @brief Bind the store to two opened, mapped partitions and a RAM buffer.
 * @return 0, or -EINVAL on NULL arguments.
 */
int state_store_init(struct state_store *s, const struct flash_area *slot0,
		     const uint8_t *mapped0, const struct flash_area *slot1,
		     const uint8_t *mapped1, uint8_t *buf, size_t buf_size);

/**
 * @brief Load the newest valid state into @p t (a slot that fails any check
 *        is skipped; @p report says why per slot).
 * @return PEFT_OK when a state was loaded, else the status of the newer failure
 *         (PEFT_ERR_STATE_MAGIC when both slots are empty).
 */
peft_status state_store_load(struct state_store *s, peft_trainer *t,
			     struct state_slot_report report[2]);

/**
 * @brief Save the trainer's state to the older slot with the next sequence.
 * @param slot_out receives the slot written (may be NULL).
 * @return 0, -ENOMEM if the state does not fit the buffer or a slot, -EIO on
 *         flash errors, -EINVAL if the export fails.
 */
int state_store_save(struct state_store *s, const peft_trainer *t, uint32_t epoch, int *slot_out);

/**
 * @brief state_store_save(), stopped after @p budget bytes have been
 *        programmed (0: right after the erase), as a power cut would. For tests.
 */
int state_store_save_interrupted(struct state_store *s, const peft_trainer *t, uint32_t epoch,
				 size_t budget, int *slot_out);

#endif /* STATE_STORE_H */
