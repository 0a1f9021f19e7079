/* Two-slot trained-state storage: see state_store.h for the protocol. */
#include "state_store.h"

#include <errno.h>
#include <string.h>

int state_store_init(struct state_store *s, const struct flash_area *slot0,
		     const uint8_t *mapped0, const struct flash_area *slot1,
		     const uint8_t *mapped1, uint8_t *buf, size_t buf_size)
{
	if (s == NULL || slot0 == NULL || slot1 == NULL || mapped0 == NULL || mapped1 == NULL ||
	    buf == NULL) {
		return -EINVAL;
	}
	s->slot[0] = slot0;
	s->slot[1] = slot1;
	s->mapped[0] = mapped0;
	s->mapped[1] = mapped1;
	s->buf = buf;
	s->buf_size = buf_size;
	s->newest = -1;
	s->meta = (peft_state_meta){0};
	return 0;
}

static int slot_erased(const struct state_store *s, int i)
{
	for (size_t k = 0; k < PEFT_STATE_HEADER_SIZE; k++) {
		if (s->mapped[i][k] != 0xFFu) {
			return 0;
		}
	}
	return 1;
}

peft_status state_store_load(struct state_store *s, peft_trainer *t,
			     struct state_slot_report report[2])
{
	struct state_slot_report r[2];

	/* import_state changes nothing unless the blob passes every check, so
	 * importing each slot in turn and re-importing the newer one is safe. */
	for (int i = 0; i < 2; i++) {
		r[i].erased = slot_erased(s, i);
		r[i].meta = (peft_state_meta){0};
		r[i].status = peft_trainer_import_state(t, s->mapped[i], s->slot[i]->fa_size,
							&r[i].meta);
	}
	int newest = -1;

	if (r[0].status == PEFT_OK && r[1].status == PEFT_OK) {
		/* Sequence numbers compare modulo 2^32 (wrap-safe). */
		newest = ((int32_t)(r[1].meta.sequence - r[0].meta.sequence) > 0) ? 1 : 0;
		if (newest == 0) {
			peft_status st = peft_trainer_import_state(t, s->mapped[0],
								   s->slot[0]->fa_size, NULL);
			if (st != PEFT_OK) {
				return st;
			}
		}
	} else if (r[0].status == PEFT_OK) {
		newest = 0;
	} else if (r[1].status == PEFT_OK) {
		newest = 1;
	}
	if (report != NULL) {
		report[0] = r[0];
		report[1] = r[1];
	}
	s->newest = newest;
	if (newest < 0) {
		s->meta = (peft_state_meta){0};
		return r[0].erased ? r[1].status : r[0].status;
	}
	s->meta = r[newest].meta;
	return PEFT_OK;
}

/* Program [from, to) of the buffer, at most *budget bytes (a simulated power cut). */
static int program(const struct flash_area *fa, const uint8_t *buf, size_t from, size_t to,
		   size_t *budget)
{
	size_t n = to - from;

	if (n > *budget) {
		n = *budget;
		n -= n % 4u; /* whole write blocks of the nRF52840 (4 B) */
	}
	if (n > 0u && flash_area_write(fa, (off_t)from, buf + from, n) != 0) {
		return -EIO;
	}
	*budget -= n;
	return (n == to - from) ? 0 : 1;
}

int state_store_save_interrupted(struct state_store *s, const peft_trainer *t, uint32_t epoch,
				 size_t budget, int *slot_out)
{
	const int target = (s->newest == 0) ? 1 : 0;
	const struct flash_area *fa = s->slot[target];
	const size_t align = flash_area_align(fa) > 4u ? flash_area_align(fa) : 4u;
	size_t bytes = 0;
	size_t written = 0;

	if (peft_trainer_state_size(t, &bytes) != PEFT_OK) {
		return -EINVAL;
	}
	const size_t padded = (bytes + align - 1u) / align * align;

	if (padded > s->buf_size || padded > fa->fa_size || PEFT_STATE_HEADER_SIZE % align != 0u) {
		return -ENOMEM;
	}
	const peft_state_meta meta = {
		.epoch = epoch,
		.sequence = (s->newest < 0) ? 1u : s->meta.sequence + 1u,
	};

	if (peft_trainer_export_state(t, s->buf, s->buf_size, &written, &meta) != PEFT_OK ||
	    written != bytes) {
		return -EINVAL;
	}
	memset(s->buf + bytes, 0xFF, padded - bytes);

	/* Erase whole pages covering the state; never the other slot. */
	if (flash_area_erase(fa, 0, fa->fa_size) != 0) {
		return -EIO;
	}
	int rc = program(fa, s->buf, PEFT_STATE_HEADER_SIZE, padded, &budget);

	if (rc == 0) {
		rc = program(fa, s->buf, 0, PEFT_STATE_HEADER_SIZE, &budget); /* commit */
	}
	if (rc < 0) {
		return rc;
	}
	if (rc > 0) {
		return 1; /* interrupted: the older state stays the newest valid one */
	}
	s->newest = target;
	s->meta = meta;
	if (slot_out != NULL) {
		*slot_out = target;
	}
	return 0;
}

int state_store_save(struct state_store *s, const peft_trainer *t, uint32_t epoch, int *slot_out)
{
	return state_store_save_interrupted(s, t, epoch, SIZE_MAX, slot_out);
}
