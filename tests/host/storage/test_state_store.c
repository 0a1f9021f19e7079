/*
 * The two-slot state store (subsys/storage) on a NOR-flash fake, with power cuts.
 *
 * For 0, 1, 2 and 3 earlier saves, with the first save on slot 0 and on slot 1,
 * on 4 KiB and 64 KiB slots (4 KiB pages, 4-byte write blocks) and on 4 KiB slots
 * of 1 KiB pages with 8-byte blocks, a save is cut before every flash call, in
 * the middle of every page it erases, and after every byte it writes (the next
 * block torn). After each cut the device reboots: a state must load once one
 * existed, and it must be the previous one, unless the cut came after the last
 * write (then the new one); the store must then save and load again. The
 * reference for "the previous state" is the trainer's own export of it, byte for
 * byte. The state streams through a buffer smaller than it (the sample's
 * PEFT_STATE_STREAM_BUFFER). Also: a save erases only the pages the state covers; non-finite
 * parameters are never saved; resume falls back to the older slot when the
 * newest fails to import or to run.
 *
 * Usage: test_state_store <demo_model.bin> (the sample's model+plan container) [...].
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nor_flash_fake.h"
#include "peft/peft_crc32.h"
#include "peft/peft_plan.h"
#include "peft/peft_trainer.h"
#include "peft/storage/peft_images.h"
#include "peft/storage/peft_state_store.h"
#include "peft_test.h"

#define MAX_SLOT  (64u * 1024u)
#define MAX_STATE 8192u
#define ARENA     65536u

static uint8_t container[65536] __attribute__((aligned(16)));
static peft_plan plan;
static uint8_t arena_main[ARENA] __attribute__((aligned(16)));
static uint8_t arena_boot[ARENA] __attribute__((aligned(16)));
static peft_trainer trainer; /* the one that trains and saves */
static peft_trainer booted;  /* a fresh one after each reboot */

static uint8_t mem[2 * MAX_SLOT], snapshot[2 * MAX_SLOT];
static bool written[2 * MAX_SLOT], written_snapshot[2 * MAX_SLOT];
/* The store's stream buffer: the sample's size, far smaller than a state, so that
 * every save and load streams through it in many pieces. */
static uint8_t state_buf[PEFT_STATE_STREAM_BUFFER] __attribute__((aligned(4)));
static uint8_t expect_prev[MAX_STATE], expect_next[MAX_STATE], got[MAX_STATE];
static size_t state_bytes;

static unsigned long cuts_total, cuts_survived, recoveries;

struct geometry {
	uint32_t slot, page, block;
};

static void load_container(const char *path)
{
	FILE *f = fopen(path, "rb");

	PEFT_CHECK(f != NULL);
	const size_t n = fread(container, 1, sizeof(container), f);

	fclose(f);
	struct peft_model_image img;

	PEFT_CHECK_EQ_INT(peft_model_image_parse(container, n, &img), PEFT_IMAGE_OK);
	PEFT_CHECK_EQ_INT(peft_plan_load(&plan, img.plan, img.plan_len, img.model, img.model_len),
			  PEFT_OK);
}

static void fresh_trainer(peft_trainer *t, uint8_t *arena)
{
	size_t need = 0;

	PEFT_CHECK_EQ_INT(peft_plan_arena_size(&plan, PEFT_MODE_TRAIN, &need), PEFT_OK);
	PEFT_CHECK(need <= ARENA);
	PEFT_CHECK_EQ_INT(peft_trainer_init(t, &plan, PEFT_MODE_TRAIN, arena, need), PEFT_OK);
}

/* A few optimizer steps on pseudo-random inputs, so that each save differs. */
static void train(uint32_t seed)
{
	static float input[4096];
	peft_dims d;
	int32_t classes = 0;

	PEFT_CHECK_EQ_INT(peft_plan_input_dims(&plan, &d), PEFT_OK);
	PEFT_CHECK_EQ_INT(peft_plan_num_classes(&plan, &classes), PEFT_OK);
	const int32_t n = d.h * d.w * d.c;

	PEFT_CHECK(n <= 4096);
	for (int s = 0; s < 3; s++) {
		for (int32_t i = 0; i < n; i++) {
			seed = seed * 1664525u + 1013904223u;
			input[i] = (float)(seed >> 8) / 16777216.0f;
		}
		PEFT_CHECK_EQ_INT(peft_trainer_train_sample_f32(&trainer, input, s % classes, NULL),
				  PEFT_OK);
		PEFT_CHECK_EQ_INT(peft_trainer_step(&trainer), PEFT_OK);
	}
}

/* The state blob of t with the given metadata (the reference for what must load). */
static void export_of(const peft_trainer *t, const peft_state_meta *meta, uint8_t *out)
{
	size_t n = 0;

	PEFT_CHECK_EQ_INT(peft_trainer_export_state(t, out, MAX_STATE, &n, meta), PEFT_OK);
	PEFT_CHECK_EQ_INT(n, state_bytes);
}

struct rig {
	struct nor_fake dev;
	struct nor_region region[2];
	const struct peft_flash *slot[2]; /* store slot i -> region */
	struct peft_state_store store;
};

static void rig_init(struct rig *r, const struct geometry *g, int first_slot_region)
{
	nor_fake_init(&r->dev, mem, written, 2 * g->slot, g->page, g->block);
	nor_region_init(&r->region[0], &r->dev, 0, g->slot);
	nor_region_init(&r->region[1], &r->dev, g->slot, g->slot);
	r->slot[0] = &r->region[first_slot_region].flash;
	r->slot[1] = &r->region[1 - first_slot_region].flash;
	PEFT_CHECK_EQ_INT(peft_state_store_init(&r->store, r->slot[0], r->slot[1], state_buf,
						sizeof(state_buf)),
			  0);
}

/* Reboot: a fresh store over the same flash; returns resume's status. The booted
 * trainer is initialised once: an import replaces all it holds or changes nothing,
 * and every check below looks at resume's status first. */
static peft_status reboot(struct rig *r, struct peft_state_store *store,
			  struct peft_state_slot_report rep[2])
{
	nor_fake_power_on(&r->dev);
	PEFT_CHECK_EQ_INT(
		peft_state_store_init(store, r->slot[0], r->slot[1], state_buf, sizeof(state_buf)),
		0);
	return peft_state_store_resume(store, &booted, NULL, rep);
}

/* After a cut: the state that loads is `want` (NULL: none); with `recover`, the
 * store then saves over the damaged slot and loads that. */
static void check_after_cut(struct rig *r, const uint8_t *want, bool recover, const char *what,
			    uint32_t a, uint32_t b)
{
	struct peft_state_store store;
	struct peft_state_slot_report rep[2];
	const peft_status st = reboot(r, &store, rep);

	cuts_total++;
	if (want == NULL) {
		if (st == PEFT_OK || store.current != -1) {
			fprintf(stderr, "cut %s %u/%u: a state loaded where none was saved\n", what,
				a, b);
			exit(1);
		}
	} else {
		if (st != PEFT_OK) {
			fprintf(stderr, "cut %s %u/%u: no state loads (%s)\n", what, a, b,
				peft_status_str(st));
			exit(1);
		}
		export_of(&booted, &store.meta, got);
		if (memcmp(got, want, state_bytes) != 0) {
			fprintf(stderr, "cut %s %u/%u: the state loaded is not the expected one\n",
				what, a, b);
			exit(1);
		}
	}
	PEFT_CHECK_EQ_INT(r->dev.violations, 0);
	cuts_survived++;
	if (!recover) {
		return;
	}
	/* The store recovers: the torn or half-erased slot is rewritten and wins. */
	int slot = -1;

	PEFT_CHECK_EQ_INT(peft_state_store_save(&store, &booted, 99, &slot), 0);
	const uint32_t seq = store.meta.sequence;

	PEFT_CHECK_EQ_INT(reboot(r, &store, rep), PEFT_OK);
	PEFT_CHECK_EQ_INT(store.meta.sequence, seq);
	PEFT_CHECK_EQ_INT(store.meta.epoch, 99);
	PEFT_CHECK_EQ_INT(r->dev.violations, 0);
	recoveries++;
}

static void restore(struct rig *r, const struct peft_state_store *store_before)
{
	memcpy(mem, snapshot, r->dev.size);
	memcpy(written, written_snapshot, sizeof(bool) * (r->dev.size / r->dev.block));
	nor_fake_power_on(&r->dev);
	r->store = *store_before;
}

/* k earlier saves, then one save cut at every point. */
static void scenario(const struct geometry *g, int first_slot_region, int k)
{
	struct rig r;
	struct peft_state_slot_report rep[2];

	rig_init(&r, g, first_slot_region);
	/* A marker beyond the pages a state needs, to show they are never erased. */
	const uint32_t tail = g->slot - g->page;

	if (tail >= MAX_STATE) {
		memset(mem + tail, 0xA5, g->page);
		memset(mem + g->slot + tail, 0x5A, g->page);
	}
	fresh_trainer(&trainer, arena_main);
	PEFT_CHECK(peft_state_store_resume(&r.store, &trainer, NULL, rep) != PEFT_OK);
	PEFT_CHECK(rep[0].erased && rep[1].erased);
	for (int i = 0; i < k; i++) {
		int slot = -1;

		train(100u * (uint32_t)k + (uint32_t)i);
		PEFT_CHECK_EQ_INT(
			peft_state_store_save(&r.store, &trainer, (uint32_t)i + 1u, &slot), 0);
		PEFT_CHECK_EQ_INT(slot, i % 2);
	}
	if (k > 0) {
		export_of(&trainer, &r.store.meta, expect_prev);
	}
	train(7777u + (uint32_t)k);

	/* The uncut save, recorded: its calls are where the cuts go. */
	const struct peft_state_store before = r.store;

	memcpy(snapshot, mem, r.dev.size);
	memcpy(written_snapshot, written, sizeof(bool) * (r.dev.size / r.dev.block));
	nor_fake_power_on(&r.dev);
	const uint32_t erased_before = r.dev.pages_erased;
	int slot = -1;

	PEFT_CHECK_EQ_INT(peft_state_store_save(&r.store, &trainer, 50, &slot), 0);
	PEFT_CHECK_EQ_INT(slot, k % 2);
	export_of(&trainer, &r.store.meta, expect_next);
	const uint32_t n_calls = r.dev.n_log;
	struct nor_call log[NOR_LOG_MAX];

	memcpy(log, r.dev.log, sizeof(log));
	PEFT_CHECK(n_calls < NOR_LOG_MAX);

	/* Only the pages the state covers are erased; the marker beyond survives. */
	const uint32_t padded = (uint32_t)((state_bytes + g->block - 1u) / g->block * g->block);
	const uint32_t pages = (padded + g->page - 1u) / g->page;

	PEFT_CHECK_EQ_INT(r.dev.pages_erased - erased_before, pages);
	if (tail >= MAX_STATE) {
		const uint8_t *target =
			mem + (uint32_t)(r.slot[slot] == &r.region[1].flash) * g->slot;
		const uint8_t marker = (target == mem) ? 0xA5 : 0x5A;

		for (uint32_t i = 0; i < g->page; i++) {
			PEFT_CHECK_EQ_INT(target[tail + i], marker);
		}
	}
	const uint8_t *prev = (k > 0) ? expect_prev : NULL;

	/* Before every flash call; "before" the call after the last = the save completed. */
	for (uint32_t c = 0; c <= n_calls; c++) {
		restore(&r, &before);
		r.dev.cut = (struct nor_cut){NOR_CUT_BEFORE_CALL, c, 0};
		const int rc = peft_state_store_save(&r.store, &trainer, 50, NULL);

		PEFT_CHECK_EQ_INT(rc == 0, c == n_calls);
		check_after_cut(&r, (c == n_calls) ? expect_next : prev, true, "before call", c,
				n_calls);
	}
	for (uint32_t c = 0; c < n_calls; c++) {
		const uint32_t units = (log[c].op == NOR_ERASE)   ? log[c].len / g->page
				       : (log[c].op == NOR_WRITE) ? log[c].len
								  : 0u;
		const enum nor_cut_kind kind =
			(log[c].op == NOR_ERASE) ? NOR_CUT_IN_ERASE : NOR_CUT_IN_WRITE;

		for (uint32_t u = 0; u < units; u++) {
			restore(&r, &before);
			r.dev.cut = (struct nor_cut){kind, c, u};
			PEFT_CHECK(peft_state_store_save(&r.store, &trainer, 50, NULL) != 0);
			/* Recovery (a save and a load more) at every page, every byte of
			 * the header, every 16th of the body: the bitwise CRC is slow. */
			const bool recover = kind == NOR_CUT_IN_ERASE ||
					     log[c].offset % g->slot == 0u || u % 16u == 0u;

			check_after_cut(&r, prev, recover,
					kind == NOR_CUT_IN_ERASE ? "in erase page" : "after byte",
					u, units);
		}
	}
}

/* Patch one parameter of the state in store slot i to NaN (CRC re-signed), as a
 * diverged save would have left it. */
static void poison_slot(struct rig *r, int i)
{
	const struct peft_flash *f = r->slot[i];
	uint8_t *blob = got;
	const float nan = NAN;

	PEFT_CHECK_EQ_INT(f->read(f, 0, blob, state_bytes), 0);
	memcpy(blob + PEFT_STATE_HEADER_SIZE, &nan, sizeof(nan));
	const uint32_t crc = peft_crc32_update(0, blob + 16, state_bytes - 16u);

	memcpy(blob + 12, &crc, sizeof(crc));
	memset(blob + state_bytes, 0xFF, sizeof(got) - state_bytes);
	const uint32_t len =
		(uint32_t)((state_bytes + f->write_size - 1u) / f->write_size * f->write_size);

	PEFT_CHECK_EQ_INT(
		f->erase(f, 0, (len + f->erase_size - 1u) / f->erase_size * f->erase_size), 0);
	PEFT_CHECK_EQ_INT(f->write(f, 0, blob, len), 0);
}

/* A check that refuses one particular state (by its first parameter). */
struct refuse_one {
	struct peft_state_check check; /* first member */
	float first_param;
	int runs;
};

static peft_status refuse_run(const struct peft_state_check *check, peft_trainer *t)
{
	struct refuse_one *self = (struct refuse_one *)check;
	peft_param_info info;

	self->runs++;
	PEFT_CHECK_EQ_INT(peft_trainer_param_info(t, 0, &info), PEFT_OK);
	return (memcmp(&info.data[0], &self->first_param, sizeof(float)) == 0) ? PEFT_ERR_NUMERIC
									       : PEFT_OK;
}

static void test_fallback_and_refusals(void)
{
	const struct geometry g = {4096, 4096, 4};
	struct rig r;
	struct peft_state_store store;
	struct peft_state_slot_report rep[2];
	peft_param_info info;
	int slot = -1;

	rig_init(&r, &g, 0);
	fresh_trainer(&trainer, arena_main);
	train(1);
	PEFT_CHECK_EQ_INT(peft_state_store_save(&r.store, &trainer, 1, &slot), 0);
	export_of(&trainer, &r.store.meta, expect_prev);
	train(2);
	PEFT_CHECK_EQ_INT(peft_state_store_save(&r.store, &trainer, 2, &slot), 0);
	PEFT_CHECK_EQ_INT(slot, 1);
	export_of(&trainer, &r.store.meta, expect_next);

	/* Non-finite parameters are never saved: nothing is written. */
	PEFT_CHECK_EQ_INT(peft_trainer_param_info(&trainer, 0, &info), PEFT_OK);
	const float keep = info.data[0];

	info.data[0] = INFINITY;
	nor_fake_power_on(&r.dev);
	PEFT_CHECK_EQ_INT(peft_state_store_save(&r.store, &trainer, 3, &slot), -EDOM);
	PEFT_CHECK_EQ_INT(r.dev.n_log, 0);
	info.data[0] = keep;

	/* The newest state fails to run (a check refuses it): the older slot is used. */
	struct refuse_one refuse = {{refuse_run}, keep, 0};

	nor_fake_power_on(&r.dev);
	PEFT_CHECK_EQ_INT(
		peft_state_store_init(&store, r.slot[0], r.slot[1], state_buf, sizeof(state_buf)),
		0);
	PEFT_CHECK_EQ_INT(peft_state_store_resume(&store, &booted, &refuse.check, rep), PEFT_OK);
	PEFT_CHECK_EQ_INT(store.current, 0);
	PEFT_CHECK_EQ_INT(rep[1].status, PEFT_OK);
	PEFT_CHECK_EQ_INT(rep[1].run_status, PEFT_ERR_NUMERIC);
	PEFT_CHECK_EQ_INT(refuse.runs, 2);
	export_of(&booted, &store.meta, got);
	PEFT_CHECK(memcmp(got, expect_prev, state_bytes) == 0);
	/* The next save replaces the refused one (slot 1), above its sequence. */
	PEFT_CHECK_EQ_INT(peft_state_store_save(&store, &booted, 3, &slot), 0);
	PEFT_CHECK_EQ_INT(slot, 1);
	PEFT_CHECK_EQ_INT(store.meta.sequence, 3);

	/* The newest state holds a NaN (a diverged save, CRC valid): whether import
	 * rejects it or it fails the finite check, the older slot is used. */
	poison_slot(&r, 1);
	PEFT_CHECK_EQ_INT(reboot(&r, &store, rep), PEFT_OK);
	PEFT_CHECK_EQ_INT(store.current, 0);
	PEFT_CHECK(rep[1].status != PEFT_OK || rep[1].run_status == PEFT_ERR_NUMERIC);
	export_of(&booted, &store.meta, got);
	PEFT_CHECK(memcmp(got, expect_prev, state_bytes) == 0);

	/* Both refused: no state, and the caller starts from the model. */
	poison_slot(&r, 0);
	PEFT_CHECK(reboot(&r, &store, rep) != PEFT_OK);
	PEFT_CHECK_EQ_INT(store.current, -1);
	PEFT_CHECK_EQ_INT(r.dev.violations, 0);
	printf("fallback: newest refused by the check or holding a NaN -> older slot used\n");
}

int main(int argc, char **argv)
{
	static const struct geometry geometries[] = {
		{4096, 4096, 4},  /* nRF52840-like pages, 4 KiB slots */
		{65536, 4096, 4}, /* 64 KiB slots (the DK's default layout) */
		{4096, 1024, 8},  /* small pages, wide write blocks: the state spans pages */
	};

	PEFT_CHECK(argc >= 2);
	load_container(argv[1]);
	fresh_trainer(&trainer, arena_main);
	PEFT_CHECK_EQ_INT(peft_trainer_state_size(&trainer, &state_bytes), PEFT_OK);
	PEFT_CHECK(state_bytes <= MAX_STATE && state_bytes <= 4096u);
	fresh_trainer(&booted, arena_boot);

	for (size_t gi = 0; gi < sizeof(geometries) / sizeof(geometries[0]); gi++) {
		const unsigned long before = cuts_total;

		for (int first = 0; first < 2; first++) {
			for (int k = 0; k <= 3; k++) {
				scenario(&geometries[gi], first, k);
			}
		}
		printf("slots of %u B, pages of %u B, write blocks of %u B: %lu cuts\n",
		       geometries[gi].slot, geometries[gi].page, geometries[gi].block,
		       cuts_total - before);
	}
	test_fallback_and_refusals();
	printf("power cuts survived: %lu/%lu (state of %u B; previous state kept, or the new "
	       "one after the last write); saved and loaded again after %lu of them\n",
	       cuts_survived, cuts_total, (unsigned)state_bytes, recoveries);
	PEFT_CHECK(cuts_total > 0 && cuts_survived == cuts_total);
	return 0;
}
