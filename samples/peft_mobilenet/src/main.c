/*
 * peft_mobilenet: fine-tunes the trainable part of an int8 model on the
 * device. The frozen prefix runs in TFLM (modules/tflite-micro); the
 * trainable part runs in the PEFT runtime (lib/peft), which also runs
 * inference after training with the adapted parameters (no merge into the
 * weights). Model+plan, dataset and the two state slots live in fixed flash
 * partitions written by `micropeft pack`; every image is checked before use.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <zephyr/devicetree.h>
#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>
#include <zephyr/logging/log_ctrl.h>
#include <zephyr/storage/flash_map.h>
#include <zephyr/sys/printk.h>

#include "peft/peft_plan.h"
#include "peft/peft_status.h"
#include "peft/peft_trainer.h"
#include "peft_tflm.h"

#include "peft/storage/peft_flash_area.h"
#include "peft/storage/peft_images.h"
#include "peft/storage/peft_state_store.h"

#include "builtin_images.h"

#if defined(CONFIG_ARCH_POSIX)
#include <posix_board_if.h>
#endif

LOG_MODULE_REGISTER(peft_sample, LOG_LEVEL_INF);

/* ---- Static memory: the whole RAM budget of the sample ---- */
static uint8_t tflm_arena[CONFIG_PEFT_TFLM_ARENA_SIZE] __aligned(16);
static uint8_t train_arena[CONFIG_PEFT_ARENA_SIZE] __aligned(16);
static int8_t prefix_cache[CONFIG_PEFT_SAMPLE_CACHE_SIZE] __aligned(4);
/* The trained state streams to and from flash through this (PEFT_STATE_STREAM_BUFFER,
 * peft_formats.h: the planner counts the same bytes). */
static uint8_t state_buf[PEFT_STATE_STREAM_BUFFER] __aligned(4);
/* A sample that is not cached is read in TFLM's output tensor: no split buffer. */

static peft_plan plan;
static peft_trainer trainer;
static peft_tflm prefix;
static struct peft_model_image model_img;
static struct peft_dataset_image data;
static struct peft_flash_area state_slot[2];
static struct peft_state_store store;
static uint32_t cached_samples;
static size_t trainer_arena_need;

/* Partitions: absent ones are reported at run time, not as a build error. */
#define PART_ID(label) COND_CODE_1(FIXED_PARTITION_EXISTS(label), (FIXED_PARTITION_ID(label)), (-1))

/* The generated list of the methods Kconfig compiles in (peft_formats.h), one string. */
#define PEFT_SAMPLE_METHOD_NAME(NAME, name) " " #name
static const char *methods_compiled(void)
{
	return "" PEFT_COMPILED_METHOD_LIST(PEFT_SAMPLE_METHOD_NAME);
}
#undef PEFT_SAMPLE_METHOD_NAME

/* Whether float math runs on the FPU: the benchmark's Cortex-M4F figures assume it does. */
static const char *fpu_state(void)
{
#if defined(CONFIG_ARCH_POSIX)
	return "the host's (native_sim)";
#elif defined(CONFIG_FPU) && defined(CONFIG_FP_HARDABI)
	return "on (hard-float ABI)";
#elif defined(CONFIG_FPU)
	return "on (soft-float ABI: floats passed in integer registers)";
#elif defined(CONFIG_CPU_HAS_FPU)
	return "off: float math in software (set CONFIG_FPU=y CONFIG_FP_HARDABI=y)";
#else
	return "none: float math in software";
#endif
}

static void print_budget(void)
{
	const size_t statics =
		sizeof(tflm_arena) + sizeof(train_arena) + sizeof(prefix_cache) + sizeof(state_buf);

	printk("micropeft peft_mobilenet on %s\n", CONFIG_BOARD);
	printk("methods compiled in:%s\n", methods_compiled());
	printk("FPU: %s\n", fpu_state());
	printk("RAM budget: TFLM arena %u B, training arena %u B, prefix cache %u B, "
	       "state buffer %u B: %u B static\n",
	       (unsigned)sizeof(tflm_arena), (unsigned)sizeof(train_arena),
	       (unsigned)sizeof(prefix_cache), (unsigned)sizeof(state_buf), (unsigned)statics);
#if DT_NODE_EXISTS(DT_CHOSEN(zephyr_sram))
	printk("RAM: %u B on this SoC (main stack %u B)\n",
	       (unsigned)DT_REG_SIZE(DT_CHOSEN(zephyr_sram)), (unsigned)CONFIG_MAIN_STACK_SIZE);
#endif
}

/* Open a partition and say what it holds, or why it cannot be used. */
static int open_partition(struct peft_flash_area *v, int id, const char *label)
{
	if (id < 0) {
		LOG_ERR("missing partition %s: the devicetree has no such fixed partition "
			"(use the overlay written by `micropeft pack`)",
			label);
		return -1;
	}
	if (peft_flash_area_open(v, (uint8_t)id, label) != 0) {
		LOG_ERR("partition %s: cannot open or map it", label);
		return -1;
	}
	return 0;
}

static bool image_ok(enum peft_image_status st, const char *what, const char *label)
{
	if (st == PEFT_IMAGE_OK) {
		return true;
	}
	LOG_ERR("%s in partition %s: %s", what, label, peft_image_status_str(st));
	if (st == PEFT_IMAGE_ERASED) {
		LOG_ERR("flash the partition images: see README.md, \"On a board\"");
	}
	return false;
}

static void explain_plan_error(peft_status st)
{
	switch (st) {
	case PEFT_ERR_PLAN_METHOD_NOT_COMPILED:
		LOG_ERR("plan refused: it needs a method or optimizer this firmware was built "
			"without (compiled in:%s); enable it (CONFIG_PEFT_METHOD_*, "
			"CONFIG_PEFT_OPTIMIZER_*) and rebuild",
			methods_compiled());
		break;
	case PEFT_ERR_PLAN_INT8_NOT_COMPILED:
		LOG_ERR("plan refused: it uses the int8 backward path (prepare-model "
			"--int8-backward); enable CONFIG_PEFT_INT8_BACKWARD and rebuild");
		break;
	case PEFT_ERR_PLAN_MODEL_MISMATCH:
		LOG_ERR("plan refused: it was made for another model (model CRC/length differ)");
		break;
	case PEFT_ERR_PLAN_VERSION:
		LOG_ERR("plan refused: format version not readable by this firmware");
		break;
	case PEFT_ERR_PLAN_MAGIC:
		LOG_ERR("plan refused: bad magic (not a plan blob)");
		break;
	case PEFT_ERR_PLAN_CRC:
		LOG_ERR("plan refused: CRC mismatch (corrupted)");
		break;
	default:
		LOG_ERR("plan refused: %s", peft_status_str(st));
		break;
	}
}

/* The prefix's output, the plan's input and the dataset must describe the same tensors. */
static bool check_shapes(void)
{
	peft_dims in;
	float scale;
	int32_t zp, classes;

	if (peft_plan_input_dims(&plan, &in) != PEFT_OK ||
	    peft_plan_input_quant(&plan, &scale, &zp) != PEFT_OK ||
	    peft_plan_num_classes(&plan, &classes) != PEFT_OK) {
		LOG_ERR("plan: cannot read its input description");
		return false;
	}
	if (in.h != prefix.out.h || in.w != prefix.out.w || in.c != prefix.out.c ||
	    zp != prefix.out.zero_point || scale != prefix.out.scale) {
		LOG_ERR("model/plan mismatch: the prefix outputs %dx%dx%d (zero point %d) but the "
			"plan's trainable part takes %dx%dx%d (zero point %d)",
			prefix.out.h, prefix.out.w, prefix.out.c, prefix.out.zero_point, in.h, in.w,
			in.c, zp);
		return false;
	}
	if (data.h != prefix.in.h || data.w != prefix.in.w || data.c != prefix.in.c ||
	    data.zero_point != prefix.in.zero_point || data.scale != prefix.in.scale) {
		LOG_ERR("dataset/model mismatch: samples are %ux%ux%u (zero point %d), the model "
			"takes %dx%dx%d (zero point %d): prepare the dataset for this model",
			data.h, data.w, data.c, data.zero_point, prefix.in.h, prefix.in.w,
			prefix.in.c, prefix.in.zero_point);
		return false;
	}
	if (data.num_classes != classes) {
		LOG_ERR("dataset/model mismatch: %u classes in the dataset, %d in the model",
			data.num_classes, classes);
		return false;
	}
	return true;
}

static const int8_t *sample_input(uint32_t i)
{
	return data.samples + (size_t)i * data.sample_bytes;
}

/* Split activation of sample i (train samples first, then test), cached when it fits. */
static peft_status split_activation(uint32_t i, const int8_t **out)
{
	const size_t n = (size_t)prefix.out.bytes;

	if (i < cached_samples) {
		*out = prefix_cache + (size_t)i * n;
		return PEFT_OK;
	}
	/* Valid until the next run: the trainer reads it before TFLM runs again. */
	return peft_tflm_run_s8_view(&prefix, sample_input(i), data.sample_bytes, out);
}

static peft_status fill_cache(void)
{
	const size_t n = (size_t)prefix.out.bytes;
	const uint32_t fit = (uint32_t)(sizeof(prefix_cache) / n);
	const uint32_t want = MIN(fit, data.n_train);

	cached_samples = 0;
	for (uint32_t i = 0; i < want; i++) {
		peft_status st = peft_tflm_run_s8(&prefix, sample_input(i), data.sample_bytes,
						  prefix_cache + (size_t)i * n, n);
		if (st != PEFT_OK) {
			return st;
		}
	}
	cached_samples = want;
	if (want == data.n_train) {
		printk("prefix cache: all %u training samples cached (%u B each, %u of %u B)\n",
		       data.n_train, (unsigned)n, (unsigned)(want * n),
		       (unsigned)sizeof(prefix_cache));
	} else {
		printk("prefix cache: %u of %u training samples cached (%u B each, %u B cache); "
		       "the rest run through TFLM every epoch\n",
		       want, data.n_train, (unsigned)n, (unsigned)sizeof(prefix_cache));
	}
	return PEFT_OK;
}

/* Accuracy (percent) over samples [first, first + count). */
static peft_status accuracy(uint32_t first, uint32_t count, float *percent)
{
	uint32_t right = 0;

	for (uint32_t k = 0; k < count; k++) {
		const int8_t *x;
		int32_t pred = -1;
		peft_status st = split_activation(first + k, &x);

		if (st == PEFT_OK) {
			st = peft_trainer_predict_s8(&trainer, x, NULL, &pred);
		}
		if (st != PEFT_OK) {
			return st;
		}
		right += (pred == (int32_t)data.labels[first + k]) ? 1u : 0u;
	}
	*percent = count ? 100.0f * (float)right / (float)count : 0.0f;
	return PEFT_OK;
}

static uint32_t gcd(uint32_t a, uint32_t b)
{
	while (b != 0u) {
		uint32_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

static uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* One epoch in a shuffled order: index (start + k * stride) mod n, stride coprime to n. */
static peft_status train_epoch(uint32_t epoch, float *mean_loss, uint64_t *cycles)
{
	const uint32_t n = data.n_train;
	uint32_t rng = (uint32_t)CONFIG_PEFT_SAMPLE_SEED * 2654435761u + epoch + 1u;
	uint32_t stride = 1u + xorshift(&rng) % n;

	while (gcd(stride, n) != 1u) {
		stride = stride % n + 1u;
	}
	const uint32_t start = xorshift(&rng) % n;
	double loss_sum = 0.0;

	*cycles = 0;
	for (uint32_t k = 0; k < n; k++) {
		const uint32_t i = (uint32_t)((start + (uint64_t)k * stride) % n);
		const uint32_t t0 = k_cycle_get_32();
		const int8_t *x;
		float loss = 0.0f;
		peft_status st = split_activation(i, &x);

		if (st == PEFT_OK) {
			st = peft_trainer_train_sample_s8(&trainer, x, data.labels[i], &loss);
		}
		if (st == PEFT_OK &&
		    ((k + 1u) % CONFIG_PEFT_SAMPLE_BATCH_SIZE == 0u || k + 1u == n)) {
			st = peft_trainer_step(&trainer);
		}
		/* Per sample, so that the 32-bit cycle counter cannot wrap in between. */
		*cycles += (uint32_t)(k_cycle_get_32() - t0);
		if (st != PEFT_OK) {
			LOG_ERR("training sample %u: %s", i, peft_status_str(st));
			return st;
		}
		loss_sum += (double)loss;
	}
	*mean_loss = (float)(loss_sum / n);
	return PEFT_OK;
}

static int load_images(void)
{
	struct peft_flash_area model_part, data_part;

	if (open_partition(&model_part, PART_ID(peft_model), "peft_model") != 0 ||
	    open_partition(&data_part, PART_ID(peft_dataset), "peft_dataset") != 0) {
		return -1;
	}
#ifdef CONFIG_PEFT_SAMPLE_BUILTIN_IMAGES
	if (builtin_images_install(&model_part, &data_part) != 0) {
		return -1;
	}
#endif
	if (!image_ok(peft_model_image_parse(model_part.data, model_part.size, &model_img),
		      "model+plan container", "peft_model") ||
	    !image_ok(peft_dataset_image_parse(data_part.data, data_part.size, &data), "dataset",
		      "peft_dataset")) {
		return -1;
	}
	printk("flash: model %u B + plan %u B in peft_model (%u KiB), dataset %u train + %u "
	       "test samples of %ux%ux%u in peft_dataset (%u KiB)\n",
	       (unsigned)model_img.model_len, (unsigned)model_img.plan_len,
	       (unsigned)(model_part.size / 1024u), data.n_train, data.n_test, data.h, data.w,
	       data.c, (unsigned)(data_part.size / 1024u));

	peft_status st = peft_plan_load(&plan, model_img.plan, model_img.plan_len, model_img.model,
					model_img.model_len);
	if (st != PEFT_OK) {
		explain_plan_error(st);
		return -1;
	}
	st = peft_tflm_init(&prefix, model_img.model, model_img.model_len, tflm_arena,
			    sizeof(tflm_arena));
	if (st != PEFT_OK) {
		LOG_ERR("TFLM refused the model's frozen prefix: %s (%s)",
			peft_tflm_error_str(prefix.error), peft_status_str(st));
		return -1;
	}
	printk("frozen prefix in TFLM: %dx%dx%d -> %dx%dx%d, TFLM arena %u of %u B used\n",
	       prefix.in.h, prefix.in.w, prefix.in.c, prefix.out.h, prefix.out.w, prefix.out.c,
	       (unsigned)prefix.arena_used, (unsigned)sizeof(tflm_arena));
	return check_shapes() ? 0 : -1;
}

/* A fresh trainer on the plan, with the sample's bound on parameter magnitude. */
static peft_status start_trainer(void)
{
	const peft_status st = peft_trainer_init(&trainer, &plan, PEFT_MODE_TRAIN, train_arena,
						 trainer_arena_need);

	if (st != PEFT_OK) {
		return st;
	}
	return peft_trainer_set_limits(&trainer, PEFT_DEFAULT_MAX_LOSS,
				       (float)CONFIG_PEFT_SAMPLE_MAX_PARAM_MILLI / 1000.0f);
}

static int init_trainer(void)
{
	size_t need = 0, infer = 0, params = 0;
	peft_arena_breakdown b;

	if (peft_plan_arena_size(&plan, PEFT_MODE_TRAIN, &need) != PEFT_OK ||
	    peft_plan_arena_size(&plan, PEFT_MODE_INFER, &infer) != PEFT_OK ||
	    peft_plan_arena_breakdown(&plan, &b) != PEFT_OK ||
	    peft_plan_trainable_params(&plan, &params) != PEFT_OK) {
		LOG_ERR("plan: cannot compute its arena size");
		return -1;
	}
	printk("plan: %u trainable parameters; training arena %u B (activations %u, gradients "
	       "%u, parameters %u, optimizer %u, scratch %u), inference arena %u B\n",
	       (unsigned)params, (unsigned)need, (unsigned)b.cached_activations,
	       (unsigned)b.gradients, (unsigned)b.parameters, (unsigned)b.optimizer_state,
	       (unsigned)b.scratch, (unsigned)infer);
	if (need > sizeof(train_arena)) {
		LOG_ERR("the plan needs a %u B training arena; CONFIG_PEFT_ARENA_SIZE is %u B",
			(unsigned)need, (unsigned)sizeof(train_arena));
		return -1;
	}
	trainer_arena_need = need;
	peft_status st = start_trainer();

	if (st != PEFT_OK) {
		LOG_ERR("trainer init: %s", peft_status_str(st));
		return -1;
	}
	return 0;
}

/* A state "runs" when the first training samples give finite logits through it
 * (the logits of models with up to RUN_CHECK_CLASSES classes are checked). */
#define RUN_CHECK_SAMPLES 8u
#define RUN_CHECK_CLASSES 128

static peft_status state_runs(const struct peft_state_check *check, peft_trainer *t)
{
	static float logits[RUN_CHECK_CLASSES];
	int32_t classes = 0;

	ARG_UNUSED(check);
	if (peft_plan_num_classes(&plan, &classes) != PEFT_OK) {
		return PEFT_ERR_ARG;
	}
	const bool check_logits = classes <= RUN_CHECK_CLASSES;

	for (uint32_t i = 0; i < MIN(RUN_CHECK_SAMPLES, data.n_train); i++) {
		const int8_t *x;
		peft_status st = split_activation(i, &x);

		if (st == PEFT_OK) {
			st = peft_trainer_predict_s8(t, x, check_logits ? logits : NULL, NULL);
		}
		if (st != PEFT_OK) {
			return st;
		}
		for (int32_t k = 0; check_logits && k < classes; k++) {
			if (!isfinite(logits[k])) {
				return PEFT_ERR_NUMERIC;
			}
		}
	}
	return PEFT_OK;
}

static const struct peft_state_check run_check = {.run = state_runs};

static void print_slot(int i, const struct peft_state_slot_report *r, int resumed)
{
	if (r->status == PEFT_OK && r->run_status != PEFT_OK) {
		printk("state slot %d: epoch %u, sequence %u fails to run (%s): not used\n", i,
		       r->meta.epoch, r->meta.sequence, peft_status_str(r->run_status));
	} else if (r->status == PEFT_OK) {
		printk("state slot %d: valid (epoch %u, sequence %u)%s\n", i, r->meta.epoch,
		       r->meta.sequence, i == resumed ? "" : ", not used");
	} else if (r->erased) {
		printk("state slot %d: empty\n", i);
	} else {
		printk("state slot %d: fails to import (%s): not used\n", i,
		       peft_status_str(r->status));
	}
}

/* Resume from the newest slot that imports and runs, else the older one. Returns the
 * epoch reached. */
static uint32_t resume(bool *can_save)
{
	struct peft_state_slot_report rep[2];

	*can_save = false;
	if (open_partition(&state_slot[0], PART_ID(peft_state0), "peft_state0") != 0 ||
	    open_partition(&state_slot[1], PART_ID(peft_state1), "peft_state1") != 0 ||
	    peft_state_store_init(&store, &state_slot[0].flash, &state_slot[1].flash, state_buf,
				  sizeof(state_buf)) != 0) {
		printk("state: slots unavailable, training will not be saved\n");
		return 0;
	}
	size_t bytes = 0;

	if (peft_trainer_state_size(&trainer, &bytes) != PEFT_OK || bytes > state_slot[0].size ||
	    bytes > state_slot[1].size) {
		printk("state: %u B does not fit the %u B slots: not saving\n", (unsigned)bytes,
		       (unsigned)MIN(state_slot[0].size, state_slot[1].size));
	} else {
		*can_save = true;
	}
	peft_status st = peft_state_store_resume(&store, &trainer, &run_check, rep);

	for (int i = 0; i < 2; i++) {
		print_slot(i, &rep[i], store.current);
	}
	const int other = 1 - store.current;

	if (st == PEFT_OK && !rep[other].erased &&
	    (rep[other].status != PEFT_OK || rep[other].run_status != PEFT_OK)) {
		printk("falling back to the older state in slot %d: the newer one in slot %d "
		       "fails to %s\n",
		       store.current, other, rep[other].status != PEFT_OK ? "import" : "run");
	}
	if (st != PEFT_OK) {
		/* A state that imported but failed to run may be in the trainer: start over. */
		if (start_trainer() != PEFT_OK) {
			LOG_ERR("trainer init failed");
			*can_save = false;
		}
		printk("%s: starting from the model's parameters\n",
		       (rep[0].erased && rep[1].erased) ? "no saved state"
							: "no usable saved state");
		return 0;
	}
	printk("resumed from state slot %d (epoch %u, sequence %u)\n", store.current,
	       store.meta.epoch, store.meta.sequence);
	return store.meta.epoch;
}

/* The end of the run; on native_sim the process exits, so a run takes seconds. */
static int finish(const char *why)
{
	printk("%s\n", why);
#if defined(CONFIG_ARCH_POSIX)
	LOG_PANIC();
	posix_exit(0);
#endif
	return 0;
}

/* An epoch's mean loss this far above chance (ln of the class count) means the
 * training diverged: such a state is never saved. */
static bool diverged(float loss)
{
	return !isfinite(loss) || loss * 1000.0f > (float)CONFIG_PEFT_SAMPLE_MAX_LOSS_MILLI;
}

/* After a stop: nothing of this epoch is saved. Where a state was saved before,
 * the slots are read back as the next boot reads them, to show that it resumes
 * from the state kept. */
static void keep_saved_state(void)
{
	bool can_save;

	if (store.current < 0) {
		printk("state not saved\n");
		return;
	}
	printk("state not saved; slot %d keeps epoch %u (sequence %u)\n", store.current,
	       store.meta.epoch, store.meta.sequence);
	printk("checking the saved state as the next boot will:\n");
	(void)resume(&can_save);
}

int main(void)
{
	bool can_save;
	float before = 0.0f, test_acc = 0.0f, train_acc = 0.0f;

	print_budget();
	if (load_images() != 0 || init_trainer() != 0) {
		return finish("stopped: fix the error above");
	}
	if (fill_cache() != PEFT_OK) {
		LOG_ERR("TFLM failed on a training sample: %s", peft_tflm_error_str(prefix.error));
		return finish("stopped: fix the error above");
	}
	uint32_t epoch = resume(&can_save);
	const uint32_t start_epoch = epoch;

	if (accuracy(data.n_train, data.n_test, &before) != PEFT_OK) {
		return finish("stopped: inference failed");
	}
	printk("inference: frozen prefix in TFLM, trainable part in the PEFT runtime with the "
	       "adapted parameters (not merged into the weights)\n");
	printk("epoch %u: test acc %.1f%%\n", epoch, (double)before);
	test_acc = before;

	for (; epoch < CONFIG_PEFT_SAMPLE_EPOCHS; epoch++) {
		float loss = 0.0f;
		uint64_t cycles = 0;
		size_t high = 0;

		const peft_status st = train_epoch(epoch, &loss, &cycles);

		if (st == PEFT_ERR_DIVERGED) {
			printk("epoch %u diverged: a step would take a parameter beyond %u.%03u "
			       "or a sample's loss beyond %.0f\n",
			       epoch + 1u, CONFIG_PEFT_SAMPLE_MAX_PARAM_MILLI / 1000u,
			       CONFIG_PEFT_SAMPLE_MAX_PARAM_MILLI % 1000u,
			       (double)PEFT_DEFAULT_MAX_LOSS);
			keep_saved_state();
			return finish("stopped: training diverged");
		}
		if (st != PEFT_OK) {
			keep_saved_state();
			return finish("stopped: training failed");
		}
		if (diverged(loss)) {
			printk("epoch %u diverged: mean loss %.4f above %u.%03u\n", epoch + 1u,
			       (double)loss, CONFIG_PEFT_SAMPLE_MAX_LOSS_MILLI / 1000u,
			       CONFIG_PEFT_SAMPLE_MAX_LOSS_MILLI % 1000u);
			keep_saved_state();
			return finish("stopped: training diverged");
		}
		if (accuracy(0, data.n_train, &train_acc) != PEFT_OK ||
		    accuracy(data.n_train, data.n_test, &test_acc) != PEFT_OK ||
		    peft_trainer_arena_high_water(&trainer, &high) != PEFT_OK) {
			keep_saved_state();
			return finish("stopped: inference failed");
		}
		printk("epoch %u/%u: loss %.4f train acc %.1f%% test acc %.1f%% time %u ms "
		       "arena high-water %u/%u B\n",
		       epoch + 1u, (unsigned)CONFIG_PEFT_SAMPLE_EPOCHS, (double)loss,
		       (double)train_acc, (double)test_acc, (unsigned)k_cyc_to_ms_floor64(cycles),
		       (unsigned)high, (unsigned)trainer.arena_size);
		if (can_save) {
			int slot = -1;
			int rc = peft_state_store_save(&store, &trainer, epoch + 1u, &slot);

			if (rc == 0) {
				printk("state saved to slot %d (epoch %u, sequence %u)\n", slot,
				       store.meta.epoch, store.meta.sequence);
			} else if (rc == -EDOM) {
				LOG_ERR("a parameter is not finite");
				keep_saved_state();
				return finish("stopped: training diverged");
			} else {
				LOG_ERR("saving the state failed (%d); the previous slot stays "
					"valid",
					rc);
			}
		}
	}
	if (start_epoch >= CONFIG_PEFT_SAMPLE_EPOCHS) {
		printk("training already complete (epoch %u of %u): nothing to do\n", start_epoch,
		       (unsigned)CONFIG_PEFT_SAMPLE_EPOCHS);
	} else if (test_acc > before) {
		printk("test accuracy improved: %.1f%% -> %.1f%%\n", (double)before,
		       (double)test_acc);
	} else {
		printk("test accuracy did not improve: %.1f%% -> %.1f%%\n", (double)before,
		       (double)test_acc);
	}
	return finish("done");
}
