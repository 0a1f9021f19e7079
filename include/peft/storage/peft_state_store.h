/**
 * @file peft_state_store.h
 * @brief The trained state in two flash slots, safe against a power cut at any point.
 *
 * Each save goes to the slot that does not hold the state in use, with a
 * sequence number one above every valid one. It erases only the pages the state
 * needs, writes the body, and writes the state header (magic, lengths, CRC32,
 * sequence) last: until that header is complete the slot reads as invalid, so a
 * cut during a save (before any flash call, in the middle of an erase, or in a
 * write, with the word being written torn) leaves the other slot's state in use.
 *
 * Portable: the slots are reached through peft_flash.h only, so the same code
 * runs on the device (peft_flash_area.h) and in the host tests (a NOR-flash fake
 * with power cuts).
 */
#ifndef PEFT_STORAGE_PEFT_STATE_STORE_H
#define PEFT_STORAGE_PEFT_STATE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peft/peft_state.h"
#include "peft/peft_status.h"
#include "peft/peft_trainer.h"
#include "peft/storage/peft_flash.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup peft_state_store Two-slot state store
 * @{
 */

/** The store: two slots and a small RAM buffer through which states stream. */
struct peft_state_store {
	const struct peft_flash *slot[2];
	uint8_t *buf; /**< A window of the state blob (checked on load, exported on save). */
	size_t buf_size;
	int current;            /**< Slot of the state in use, -1 if none. */
	peft_state_meta meta;   /**< Its metadata. */
	uint32_t last_sequence; /**< Highest sequence of any valid slot (0: none). */
	bool any_valid;         /**< Some slot held a valid state at load time. */
};

/** What loading found in one slot. */
struct peft_state_slot_report {
	/** PEFT_OK, or why the slot could not be imported (PEFT_ERR_BUFFER_TOO_SMALL: the
	 *  slot is smaller than a state header; PEFT_ERR_STATE_TRUNCATED with
	 *  flash_rc set: the read failed; else peft_trainer_import_state()'s status). */
	peft_status status;
	/** Why an imported state failed to run (non-finite parameters: PEFT_ERR_NUMERIC,
	 *  or the check's status); PEFT_OK when it ran or was not tried. */
	peft_status run_status;
	bool erased;          /**< The slot holds nothing (its header is erased). */
	int flash_rc;         /**< The read's negative errno, 0 if it succeeded. */
	peft_state_meta meta; /**< Valid when status is PEFT_OK. */
};

/**
 * A check that an imported state can be trained on (for instance, a forward pass
 * over a few samples gives finite outputs). The caller embeds this struct as the
 * first member of its own and recovers it from the pointer.
 */
struct peft_state_check {
	peft_status (*run)(const struct peft_state_check *check, peft_trainer *t);
};

/**
 * @brief Bind the store to two slots and a buffer through which a state streams
 *        (any size from PEFT_STATE_HEADER_SIZE up, whole write blocks of both
 *        slots; PEFT_STATE_STREAM_BUFFER is the sample's, which the planner counts).
 * @return 0, or -EINVAL on NULL arguments, a slot whose write block does not
 *         divide the state header, or a buffer under the header or not whole
 *         write blocks.
 */
int peft_state_store_init(struct peft_state_store *s, const struct peft_flash *slot0,
			  const struct peft_flash *slot1, uint8_t *buf, size_t buf_size);

/**
 * @brief Resume from the newest slot that imports, has finite parameters and
 *        passes @p check; else from the older one.
 *
 * Slots are tried newest first. A slot that fails to import leaves @p t as it
 * was; one that imports but fails to run does not (the next slot, if it
 * imports, replaces it). When no slot passes (PEFT_OK is not returned), the
 * caller must re-initialise @p t before training from the model's parameters.
 *
 * @param check NULL: only the finite-parameter check.
 * @param report receives what each slot held and why it was not used (may be NULL).
 * @return PEFT_OK with s->current the slot resumed; else the status of the
 *         newest non-erased slot's failure (PEFT_ERR_STATE_MAGIC when both are
 *         empty), s->current = -1.
 */
peft_status peft_state_store_resume(struct peft_state_store *s, peft_trainer *t,
				    const struct peft_state_check *check,
				    struct peft_state_slot_report report[2]);

/**
 * @brief Save the trainer's state to the slot not in use, with the next sequence.
 * @param slot_out receives the slot written (may be NULL).
 * @return 0; -EDOM if a parameter is not finite (nothing is written); -ENOMEM if
 *         the state does not fit a slot; -EINVAL if the export
 *         fails; or the flash call's negative errno. On any error the slot in use
 *         stays valid.
 */
int peft_state_store_save(struct peft_state_store *s, const peft_trainer *t, uint32_t epoch,
			  int *slot_out);

/**
 * @brief Whether every trainable parameter of @p t is finite.
 * @return PEFT_OK, PEFT_ERR_NUMERIC if one is NaN or infinite, or the error of
 *         reading the parameters.
 */
peft_status peft_state_params_finite(const peft_trainer *t);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* PEFT_STORAGE_PEFT_STATE_STORE_H */
