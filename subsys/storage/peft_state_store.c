/* Two-slot trained-state storage: see peft_state_store.h for the protocol. */
#include "peft/storage/peft_state_store.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "peft/peft_bytes.h"
#include "peft/peft_formats.h"

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
	/* The buffer streams the state: the header, then whole write blocks. */
	if (buf_size < PEFT_STATE_HEADER_SIZE || buf_size % slot0->write_size != 0u ||
	    buf_size % slot1->write_size != 0u) {
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

struct slot_reader {
	const struct peft_flash *flash;
	int rc; /* the first failed read's errno */
};

static int read_slot(void *ctx, size_t offset, void *dst, size_t len)
{
	struct slot_reader *r = ctx;
	const int rc = r->flash->read(r->flash, (uint32_t)offset, dst, len);

	if (rc != 0 && r->rc == 0) {
		r->rc = rc;
	}
	return rc;
}

/* Import slot i's state blob, streamed through the store's buffer. */
static peft_status import_slot(struct peft_state_store *s, peft_trainer *t, int i,
			       struct peft_state_slot_report *r)
{
	const struct peft_flash *f = s->slot[i];
	struct slot_reader reader = {f, 0};

	*r = (struct peft_state_slot_report){.status = PEFT_ERR_BUFFER_TOO_SMALL,
					     .run_status = PEFT_OK};
	if (f->size < PEFT_STATE_HEADER_SIZE) {
		return r->status;
	}
	r->flash_rc = f->read(f, 0, s->buf, PEFT_STATE_HEADER_SIZE);
	if (r->flash_rc != 0) {
		r->status = PEFT_ERR_STATE_TRUNCATED;
		return r->status;
	}
	r->erased = header_erased(s->buf);
	r->status = peft_trainer_import_state_from(t, read_slot, &reader, f->size, s->buf,
						   s->buf_size, &r->meta);
	r->flash_rc = reader.rc;
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
	/* t holds slot 1 if it imported; else (a failed import may have changed t
	 * when a read failed mid-copy) nothing known. */
	int held = (r[1].status == PEFT_OK) ? 1 : -1;

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

/* Write [from, to) of the blob, padded with erased bytes to whole blocks,
 * through the store's buffer. */
static int write_blob(struct peft_state_store *s, const peft_trainer *t, const struct peft_flash *f,
		      const peft_state_meta *meta, size_t from, size_t to, size_t bytes)
{
	for (size_t pos = from; pos < to;) {
		const size_t n = (to - pos < s->buf_size) ? to - pos : s->buf_size;
		const size_t data = (pos >= bytes) ? 0u : (bytes - pos < n ? bytes - pos : n);

		if (peft_trainer_export_state_range(t, meta, pos, s->buf, data) != PEFT_OK) {
			return -EINVAL;
		}
		memset(s->buf + data, PEFT_FLASH_ERASED, n - data);
		const int rc = f->write(f, (uint32_t)pos, s->buf, n);

		if (rc != 0) {
			return rc < 0 ? rc : -EIO;
		}
		pos += n;
	}
	return 0;
}

int peft_state_store_save(struct peft_state_store *s, const peft_trainer *t, uint32_t epoch,
			  int *slot_out)
{
	/* Never overwrite the state in use; with none in use, slot 0 first. */
	const int target = (s->current == 0) ? 1 : 0;
	const struct peft_flash *f = s->slot[target];
	const size_t block = f->write_size;
	size_t bytes = 0;

	if (peft_state_params_finite(t) != PEFT_OK) {
		return -EDOM;
	}
	if (peft_trainer_state_size(t, &bytes) != PEFT_OK) {
		return -EINVAL;
	}
	const size_t padded = (bytes + block - 1u) / block * block;
	const size_t pages = (padded + f->erase_size - 1u) / f->erase_size;

	if (pages * f->erase_size > f->size) {
		return -ENOMEM;
	}
	const peft_state_meta meta = {
		.epoch = epoch,
		.sequence = s->any_valid ? s->last_sequence + 1u : 1u,
	};

	/* Every value finite (optimizer state too) before anything is erased. */
	if (peft_trainer_export_state_range(t, &meta, 0, s->buf, PEFT_STATE_HEADER_SIZE) !=
	    PEFT_OK) {
		return -EINVAL;
	}
	/* Only the pages the state covers; whatever lies beyond is never read. */
	int rc = f->erase(f, 0, pages * f->erase_size);

	if (rc == 0) {
		rc = write_blob(s, t, f, &meta, PEFT_STATE_HEADER_SIZE, padded, bytes);
	}
	if (rc == 0) {
		rc = write_blob(s, t, f, &meta, 0, PEFT_STATE_HEADER_SIZE, bytes); /* the commit */
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
