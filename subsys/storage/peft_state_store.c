/* Two-slot trained-state storage: see peft_state_store.h for the protocol. */
#include "peft/storage/peft_state_store.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "peft/peft_bytes.h"
#include "peft/peft_formats.h"

#define MIN_SIZE(a, b) ((a) < (b) ? (a) : (b))
#define MAX_SIZE(a, b) ((a) > (b) ? (a) : (b))

int peft_state_store_init(struct peft_state_store *s, const struct peft_flash *slot0,
			  const struct peft_flash *slot1, uint8_t *buf, size_t buf_size)
{
	if (s == NULL || slot0 == NULL || slot1 == NULL || buf == NULL) {
		return -EINVAL;
	}
	/* The header is written on its own, after the body: it must be whole blocks. */
	if (slot0->write_size == 0u || slot1->write_size == 0u ||
	    PEFT_STATE_HEADER_SIZE % slot0->write_size != 0u ||
	    PEFT_STATE_HEADER_SIZE % slot1->write_size != 0u || slot0->erase_size == 0u ||
	    slot1->erase_size == 0u) {
		return -EINVAL;
	}
	*s = (struct peft_state_store){
		.slot = {slot0, slot1},
		.buf = buf,
		.buf_size = buf_size,
		.current = -1,
	};
	return 0;
}

peft_status peft_state_params_finite(const peft_trainer *t)
{
	int32_t n = 0;
	peft_status st = peft_trainer_param_count(t, &n);

	for (int32_t i = 0; st == PEFT_OK && i < n; i++) {
		peft_param_info info;

		st = peft_trainer_param_info(t, i, &info);
		for (int32_t k = 0; st == PEFT_OK && k < info.count; k++) {
			if (!isfinite(info.data[k])) {
				st = PEFT_ERR_NUMERIC;
			}
		}
	}
	return st;
}

static bool header_erased(const uint8_t *p)
{
	for (size_t k = 0; k < PEFT_STATE_HEADER_SIZE; k++) {
		if (p[k] != PEFT_FLASH_ERASED) {
			return false;
		}
	}
	return true;
}

/* Read slot i's state blob (its header's length, at most the buffer) and import it. */
static peft_status import_slot(struct peft_state_store *s, peft_trainer *t, int i,
			       struct peft_state_slot_report *r)
{
	const struct peft_flash *f = s->slot[i];

	*r = (struct peft_state_slot_report){.status = PEFT_ERR_BUFFER_TOO_SMALL,
					     .run_status = PEFT_OK};
	if (s->buf_size < PEFT_STATE_HEADER_SIZE || f->size < PEFT_STATE_HEADER_SIZE) {
		return r->status;
	}
	r->flash_rc = f->read(f, 0, s->buf, PEFT_STATE_HEADER_SIZE);
	if (r->flash_rc != 0) {
		r->status = PEFT_ERR_STATE_TRUNCATED;
		return r->status;
	}
	r->erased = header_erased(s->buf);
	const uint32_t total = peft_rd32(s->buf + PEFT_BLOB_HDR_OFF_TOTAL_LENGTH);

	/* A length beyond the slot or the buffer: import sees the bytes there are and
	 * says what is wrong with them. */
	size_t n = MIN_SIZE(MIN_SIZE((size_t)total, s->buf_size), (size_t)f->size);

	n = MAX_SIZE(n, PEFT_STATE_HEADER_SIZE);
	if (n > PEFT_STATE_HEADER_SIZE) {
		r->flash_rc = f->read(f, PEFT_STATE_HEADER_SIZE, s->buf + PEFT_STATE_HEADER_SIZE,
				      n - PEFT_STATE_HEADER_SIZE);
		if (r->flash_rc != 0) {
			r->status = PEFT_ERR_STATE_TRUNCATED;
			return r->status;
		}
	}
	r->status = peft_trainer_import_state(t, s->buf, n, &r->meta);
	return r->status;
}

/* a is newer than b, with sequence numbers compared modulo 2^32. */
static bool newer(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}

peft_status peft_state_store_resume(struct peft_state_store *s, peft_trainer *t,
				    const struct peft_state_check *check,
				    struct peft_state_slot_report report[2])
{
	struct peft_state_slot_report r[2];

	/* import_state changes nothing unless a blob passes every check, so each slot
	 * can be imported in turn to learn its metadata, and the chosen one again. */
	for (int i = 0; i < 2; i++) {
		(void)import_slot(s, t, i, &r[i]);
	}
	s->any_valid = false;
	s->last_sequence = 0;
	for (int i = 0; i < 2; i++) {
		if (r[i].status == PEFT_OK &&
		    (!s->any_valid || newer(r[i].meta.sequence, s->last_sequence))) {
			s->last_sequence = r[i].meta.sequence;
			s->any_valid = true;
		}
	}
	int order[2] = {0, 1};

	if (r[0].status == PEFT_OK && r[1].status == PEFT_OK &&
	    newer(r[1].meta.sequence, r[0].meta.sequence)) {
		order[0] = 1;
		order[1] = 0;
	} else if (r[0].status != PEFT_OK && r[1].status == PEFT_OK) {
		order[0] = 1;
		order[1] = 0;
	}
	int held = (r[1].status == PEFT_OK) ? 1 : (r[0].status == PEFT_OK) ? 0 : -1;

	s->current = -1;
	s->meta = (peft_state_meta){0};
	for (int k = 0; k < 2 && s->current < 0; k++) {
		const int i = order[k];

		if (r[i].status != PEFT_OK) {
			continue;
		}
		struct peft_state_slot_report again;

		/* A failed import changes nothing, so t holds the last slot imported. */
		if (held != i) {
			if (import_slot(s, t, i, &again) != PEFT_OK) {
				r[i].status = again.status;
				continue;
			}
			held = i;
		}
		r[i].run_status = peft_state_params_finite(t);
		if (r[i].run_status == PEFT_OK && check != NULL) {
			r[i].run_status = check->run(check, t);
		}
		if (r[i].run_status == PEFT_OK) {
			s->current = i;
			s->meta = r[i].meta;
		}
	}
	if (report != NULL) {
		report[0] = r[0];
		report[1] = r[1];
	}
	if (s->current >= 0) {
		return PEFT_OK;
	}
	/* Why the newest candidate was not used. */
	const int first = order[0];

	if (r[first].status != PEFT_OK) {
		return (r[first].erased && !r[1 - first].erased) ? r[1 - first].status
								 : r[first].status;
	}
	return r[first].run_status;
}

int peft_state_store_save(struct peft_state_store *s, const peft_trainer *t, uint32_t epoch,
			  int *slot_out)
{
	/* Never overwrite the state in use; with none in use, slot 0 first. */
	const int target = (s->current == 0) ? 1 : 0;
	const struct peft_flash *f = s->slot[target];
	const size_t block = f->write_size;
	size_t bytes = 0, written = 0;

	if (peft_state_params_finite(t) != PEFT_OK) {
		return -EDOM;
	}
	if (peft_trainer_state_size(t, &bytes) != PEFT_OK) {
		return -EINVAL;
	}
	const size_t padded = (bytes + block - 1u) / block * block;
	const size_t pages = (padded + f->erase_size - 1u) / f->erase_size;

	if (padded > s->buf_size || pages * f->erase_size > f->size) {
		return -ENOMEM;
	}
	const peft_state_meta meta = {
		.epoch = epoch,
		.sequence = s->any_valid ? s->last_sequence + 1u : 1u,
	};

	if (peft_trainer_export_state(t, s->buf, s->buf_size, &written, &meta) != PEFT_OK ||
	    written != bytes) {
		return -EINVAL;
	}
	memset(s->buf + bytes, PEFT_FLASH_ERASED, padded - bytes);

	/* Only the pages the state covers; whatever lies beyond is never read. */
	int rc = f->erase(f, 0, pages * f->erase_size);

	if (rc == 0) {
		rc = f->write(f, PEFT_STATE_HEADER_SIZE, s->buf + PEFT_STATE_HEADER_SIZE,
			      padded - PEFT_STATE_HEADER_SIZE);
	}
	if (rc == 0) {
		rc = f->write(f, 0, s->buf, PEFT_STATE_HEADER_SIZE); /* the commit */
	}
	if (rc != 0) {
		return rc < 0 ? rc : -EIO;
	}
	s->current = target;
	s->meta = meta;
	s->last_sequence = meta.sequence;
	s->any_valid = true;
	if (slot_out != NULL) {
		*slot_out = target;
	}
	return 0;
}
