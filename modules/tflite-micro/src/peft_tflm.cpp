/*
 * TFLM glue: runs the frozen prefix of the model in TFLM's MicroInterpreter
 * and hands its int8 output (the split activation) to the PEFT runtime.
 *
 * Written against two TFLM generations: the one in Zephyr 3.4 (interpreter
 * and op resolver take an ErrorReporter) and the current one (no
 * ErrorReporter, logs through MicroPrintf, which brought micro_log.h).
 */
#include "peft_tflm.h"

#include <new>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tensorflow/lite/schema/schema_utils.h"

#if __has_include("tensorflow/lite/micro/micro_log.h")
#define PEFT_TFLM_HAS_ERROR_REPORTER 0
#else
#define PEFT_TFLM_HAS_ERROR_REPORTER 1
#include "tensorflow/lite/micro/micro_error_reporter.h"
#endif

namespace
{

/* Exactly the operators that MobileNet V1/V2 prefixes need; every other
 * kernel stays out of the image. Kernels come from whichever TFLM backend
 * the build selected (CMSIS-NN on Cortex-M with
 * CONFIG_TENSORFLOW_LITE_MICRO_CMSIS_NN_KERNELS). */
constexpr unsigned int kOpCount = 13;
using Resolver = tflite::MicroMutableOpResolver<kOpCount>;

/* TFLM wants its tensor arena 16-byte aligned. */
constexpr size_t kTensorAlign = 16;

struct Prefix {
	Resolver resolver;
	tflite::MicroInterpreter interpreter;

	Prefix(const tflite::Model *model, uint8_t *arena, size_t arena_size)
#if PEFT_TFLM_HAS_ERROR_REPORTER
		: resolver(tflite::GetMicroErrorReporter()),
		  interpreter(model, resolver, arena, arena_size, tflite::GetMicroErrorReporter())
#else
		: resolver(), interpreter(model, resolver, arena, arena_size)
#endif
	{
	}
};

size_t align_up(size_t value, size_t align)
{
	return (value + align - 1U) & ~(align - 1U);
}

bool register_ops(Resolver &r)
{
	return r.AddConv2D() == kTfLiteOk && r.AddDepthwiseConv2D() == kTfLiteOk &&
	       r.AddPad() == kTfLiteOk && r.AddAdd() == kTfLiteOk && r.AddMean() == kTfLiteOk &&
	       r.AddAveragePool2D() == kTfLiteOk && r.AddFullyConnected() == kTfLiteOk &&
	       r.AddReshape() == kTfLiteOk && r.AddSoftmax() == kTfLiteOk &&
	       r.AddQuantize() == kTfLiteOk && r.AddDequantize() == kTfLiteOk &&
	       r.AddRelu() == kTfLiteOk && r.AddRelu6() == kTfLiteOk;
}

/* Batch-1 int8 tensor -> h, w, c: [1,h,w,c], [1,w,c], [1,n] or [n]. */
bool describe(const TfLiteTensor *t, peft_tflm_tensor_info *info)
{
	if (t == nullptr || t->type != kTfLiteInt8 || t->dims == nullptr) {
		return false;
	}
	const TfLiteIntArray *d = t->dims;
	int32_t shape[3] = {1, 1, 1};
	int first = 0;
	if (d->size >= 2) {
		if (d->data[0] != 1) {
			return false; /* batch 1 only */
		}
		first = 1;
	}
	const int rank = d->size - first;
	if (rank < 1 || rank > 3) {
		return false;
	}
	for (int i = 0; i < rank; i++) {
		if (d->data[first + i] <= 0) {
			return false;
		}
		shape[3 - rank + i] = d->data[first + i];
	}
	info->h = shape[0];
	info->w = shape[1];
	info->c = shape[2];
	info->bytes = shape[0] * shape[1] * shape[2];
	info->scale = t->params.scale;
	info->zero_point = t->params.zero_point;
	return static_cast<size_t>(info->bytes) == t->bytes;
}

/* TFLM releases before per-channel FULLY_CONNECTED support (the one in
 * Zephyr 3.4) apply the first channel's scale to every output: refuse such a
 * model instead of training on wrong features. */
bool has_per_channel_fc(const tflite::Model *m)
{
#if PEFT_TFLM_HAS_ERROR_REPORTER
	const auto *codes = m->operator_codes();
	const auto *graph = m->subgraphs()->Get(0);
	if (codes == nullptr || graph->operators() == nullptr || graph->tensors() == nullptr) {
		return false;
	}
	for (const auto *op : *graph->operators()) {
		if (op->opcode_index() >= codes->size() ||
		    tflite::GetBuiltinCode(codes->Get(op->opcode_index())) !=
			    tflite::BuiltinOperator_FULLY_CONNECTED ||
		    op->inputs() == nullptr || op->inputs()->size() < 2U) {
			continue;
		}
		const int32_t w = op->inputs()->Get(1);
		if (w < 0 || static_cast<uint32_t>(w) >= graph->tensors()->size()) {
			continue; /* AllocateTensors reports it */
		}
		const auto *q = graph->tensors()->Get(w)->quantization();
		if (q != nullptr && q->scale() != nullptr && q->scale()->size() > 1U) {
			return true;
		}
	}
#else
	(void)m;
#endif
	return false;
}

peft_status fail(peft_tflm *ctx, peft_tflm_error error, peft_status status)
{
	ctx->error = error;
	ctx->interpreter = nullptr;
	return status;
}

} // namespace

extern "C" peft_status peft_tflm_init(peft_tflm *ctx, const void *model, size_t model_len,
				      uint8_t *arena, size_t arena_size)
{
	if (ctx == nullptr) {
		return PEFT_ERR_ARG;
	}
	if (model == nullptr || arena == nullptr || model_len == 0U ||
	    (reinterpret_cast<uintptr_t>(model) % 4U) != 0U) {
		return fail(ctx, PEFT_TFLM_ERROR_NONE, PEFT_ERR_ARG);
	}

	/* A blob that passed its CRC can still be a wrong flatbuffer: verify it
	 * before TFLM follows any offset inside it. */
	flatbuffers::Verifier verifier(static_cast<const uint8_t *>(model), model_len);
	if (!tflite::VerifyModelBuffer(verifier)) {
		return fail(ctx, PEFT_TFLM_ERROR_MODEL, PEFT_ERR_PLAN_FIELD);
	}
	const tflite::Model *m = tflite::GetModel(model);
	if (m->version() != TFLITE_SCHEMA_VERSION) {
		return fail(ctx, PEFT_TFLM_ERROR_SCHEMA, PEFT_ERR_PLAN_FIELD);
	}
	if (m->subgraphs() == nullptr || m->subgraphs()->size() != 1U ||
	    m->subgraphs()->Get(0)->inputs() == nullptr ||
	    m->subgraphs()->Get(0)->outputs() == nullptr ||
	    m->subgraphs()->Get(0)->inputs()->size() != 1U ||
	    m->subgraphs()->Get(0)->outputs()->size() != 1U) {
		return fail(ctx, PEFT_TFLM_ERROR_GRAPH, PEFT_ERR_PLAN_FIELD);
	}

	if (has_per_channel_fc(m)) {
		return fail(ctx, PEFT_TFLM_ERROR_FC_PER_CHANNEL, PEFT_ERR_UNSUPPORTED);
	}

	/* The interpreter object lives at the head of the arena, tensors after it. */
	const uintptr_t base = reinterpret_cast<uintptr_t>(arena);
	const size_t head = align_up(base, alignof(Prefix)) - base;
	const size_t tensors = align_up(base + head + sizeof(Prefix), kTensorAlign) - base;
	if (arena_size <= tensors) {
		return fail(ctx, PEFT_TFLM_ERROR_ARENA, PEFT_ERR_BUFFER_TOO_SMALL);
	}
	Prefix *p = new (arena + head) Prefix(m, arena + tensors, arena_size - tensors);
	if (!register_ops(p->resolver)) {
		return fail(ctx, PEFT_TFLM_ERROR_OPS, PEFT_ERR_UNSUPPORTED);
	}
	if (p->interpreter.initialization_status() != kTfLiteOk) {
		return fail(ctx, PEFT_TFLM_ERROR_OPS, PEFT_ERR_UNSUPPORTED);
	}
	/* Every operator must be in the resolver, else AllocateTensors fails too;
	 * say which failure it is. */
	const auto *codes = m->operator_codes();
	for (flatbuffers::uoffset_t i = 0; codes != nullptr && i < codes->size(); i++) {
		if (p->resolver.FindOp(tflite::GetBuiltinCode(codes->Get(i))) == nullptr) {
			return fail(ctx, PEFT_TFLM_ERROR_OPS, PEFT_ERR_UNSUPPORTED);
		}
	}
	if (p->interpreter.AllocateTensors() != kTfLiteOk) {
		return fail(ctx, PEFT_TFLM_ERROR_ARENA, PEFT_ERR_BUFFER_TOO_SMALL);
	}
	if (!describe(p->interpreter.input(0), &ctx->in) ||
	    !describe(p->interpreter.output(0), &ctx->out)) {
		return fail(ctx, PEFT_TFLM_ERROR_IO_TYPE, PEFT_ERR_UNSUPPORTED);
	}
	ctx->interpreter = p;
	ctx->arena_used = tensors + p->interpreter.arena_used_bytes();
	ctx->error = PEFT_TFLM_ERROR_NONE;
	return PEFT_OK;
}

extern "C" peft_status peft_tflm_run_s8_view(peft_tflm *ctx, const int8_t *input, size_t input_len,
					     const int8_t **output)
{
	if (ctx == nullptr || ctx->interpreter == nullptr || input == nullptr ||
	    output == nullptr || input_len != static_cast<size_t>(ctx->in.bytes)) {
		return PEFT_ERR_ARG;
	}
	Prefix *p = static_cast<Prefix *>(ctx->interpreter);
	TfLiteTensor *in = p->interpreter.input(0);
	const int8_t *src = input;
	int8_t *dst = in->data.int8;
	for (size_t i = 0; i < input_len; i++) {
		dst[i] = src[i];
	}
	if (p->interpreter.Invoke() != kTfLiteOk) {
		ctx->error = PEFT_TFLM_ERROR_INVOKE;
		return PEFT_ERR_UNSUPPORTED;
	}
	*output = p->interpreter.output(0)->data.int8;
	return PEFT_OK;
}

extern "C" peft_status peft_tflm_run_s8(peft_tflm *ctx, const int8_t *input, size_t input_len,
					int8_t *output, size_t output_len)
{
	const int8_t *res = nullptr;

	if (ctx == nullptr || output == nullptr ||
	    output_len != static_cast<size_t>(ctx->out.bytes)) {
		return PEFT_ERR_ARG;
	}
	const peft_status st = peft_tflm_run_s8_view(ctx, input, input_len, &res);

	if (st != PEFT_OK) {
		return st;
	}
	for (size_t i = 0; i < output_len; i++) {
		output[i] = res[i];
	}
	return PEFT_OK;
}

extern "C" const char *peft_tflm_error_str(peft_tflm_error error)
{
	switch (error) {
	case PEFT_TFLM_ERROR_NONE:
		return "none";
	case PEFT_TFLM_ERROR_MODEL:
		return "not a valid .tflite flatbuffer";
	case PEFT_TFLM_ERROR_SCHEMA:
		return "unsupported .tflite schema version";
	case PEFT_TFLM_ERROR_GRAPH:
		return "prefix must have one subgraph, one input, one output";
	case PEFT_TFLM_ERROR_OPS:
		return "operator not in the glue's op resolver";
	case PEFT_TFLM_ERROR_ARENA:
		return "TFLM arena too small (CONFIG_PEFT_TFLM_ARENA_SIZE)";
	case PEFT_TFLM_ERROR_IO_TYPE:
		return "prefix input/output is not batch-1 int8";
	case PEFT_TFLM_ERROR_INVOKE:
		return "a TFLM kernel failed";
	case PEFT_TFLM_ERROR_FC_PER_CHANNEL:
		return "per-channel FULLY_CONNECTED weights need a newer TFLM";
	}
	return "unknown";
}
