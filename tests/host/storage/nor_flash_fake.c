/* NOR-flash fake with power cuts: see nor_flash_fake.h. */
#include "nor_flash_fake.h"

#include <errno.h>
#include <string.h>

static uint8_t noise(struct nor_fake *dev)
{
	dev->rng ^= dev->rng << 13;
	dev->rng ^= dev->rng >> 17;
	dev->rng ^= dev->rng << 5;
	return (uint8_t)(dev->rng >> 11);
}

void nor_fake_init(struct nor_fake *dev, uint8_t *mem, bool *written, uint32_t size, uint32_t page,
		   uint32_t block)
{
	*dev = (struct nor_fake){
		.mem = mem,
		.size = size,
		.page = page,
		.block = block,
		.written = written,
		.rng = 0x9e3779b9u,
	};
	memset(mem, PEFT_FLASH_ERASED, size);
	memset(written, 0, sizeof(bool) * (size / block));
}

void nor_fake_power_on(struct nor_fake *dev)
{
	dev->cut = (struct nor_cut){NOR_CUT_NONE, 0, 0};
	dev->dead = false;
	dev->calls = 0;
	dev->n_log = 0;
}

/* Count the call; false when the power is (or goes) off before it. */
static bool powered(struct nor_fake *dev, enum nor_op op, uint32_t offset, size_t len)
{
	const uint32_t call = dev->calls++;

	if (dev->n_log < NOR_LOG_MAX) {
		dev->log[dev->n_log++] = (struct nor_call){op, offset, (uint32_t)len};
	}
	if (dev->dead) {
		return false;
	}
	if (dev->cut.kind == NOR_CUT_BEFORE_CALL && dev->cut.call == call) {
		dev->dead = true;
		return false;
	}
	return true;
}

static bool in_range(const struct nor_region *r, uint32_t offset, size_t len)
{
	return offset <= r->flash.size && len <= r->flash.size - offset;
}

static int fake_read(const struct peft_flash *flash, uint32_t offset, void *dst, size_t len)
{
	const struct nor_region *r = (const struct nor_region *)flash;
	struct nor_fake *dev = r->dev;

	if (!powered(dev, NOR_READ, r->base + offset, len)) {
		return -EIO;
	}
	if (!in_range(r, offset, len)) {
		dev->violations++;
		return -EINVAL;
	}
	memcpy(dst, dev->mem + r->base + offset, len);
	return 0;
}

static int fake_write(const struct peft_flash *flash, uint32_t offset, const void *src, size_t len)
{
	const struct nor_region *r = (const struct nor_region *)flash;
	struct nor_fake *dev = r->dev;
	const uint32_t call = dev->calls;
	const uint8_t *in = src;
	const uint32_t at = r->base + offset;

	if (!powered(dev, NOR_WRITE, at, len)) {
		return -EIO;
	}
	if (!in_range(r, offset, len) || at % dev->block != 0u || len % dev->block != 0u) {
		dev->violations++;
		return -EINVAL;
	}
	for (uint32_t b = at / dev->block; b < (at + len) / dev->block; b++) {
		if (dev->written[b]) {
			dev->violations++; /* a double write: refused, nothing programmed */
			return -EINVAL;
		}
	}
	const bool cut =
		dev->cut.kind == NOR_CUT_IN_WRITE && dev->cut.call == call && dev->cut.at < len;
	const size_t stop = cut ? dev->cut.at : len;

	for (size_t i = 0; i < stop; i++) {
		dev->mem[at + i] &= in[i];
	}
	for (uint32_t b = at / dev->block; b < (at + stop) / dev->block; b++) {
		dev->written[b] = true;
	}
	if (!cut) {
		return 0;
	}
	/* The block being programmed when the power went (erased until now): the rest
	 * of it torn, some of its bits programmed and some not. */
	const size_t end = (stop / dev->block + 1u) * dev->block;
	bool differs = false;

	for (size_t i = stop; i < end; i++) {
		dev->mem[at + i] = (uint8_t)(in[i] | noise(dev));
		differs |= dev->mem[at + i] != in[i];
	}
	/* Every bit landed by chance: leave one that had to be cleared unprogrammed. */
	for (size_t i = stop; i < end && !differs; i++) {
		const uint8_t to_clear = (uint8_t)~in[i];

		if (to_clear != 0u) {
			dev->mem[at + i] |= (uint8_t)(to_clear & (uint8_t)-to_clear);
			differs = true;
		}
	}
	dev->written[(at + stop) / dev->block] = true;
	dev->dead = true;
	return -EIO;
}

static int fake_erase(const struct peft_flash *flash, uint32_t offset, size_t len)
{
	const struct nor_region *r = (const struct nor_region *)flash;
	struct nor_fake *dev = r->dev;
	const uint32_t call = dev->calls;
	const uint32_t at = r->base + offset;

	if (!powered(dev, NOR_ERASE, at, len)) {
		return -EIO;
	}
	if (!in_range(r, offset, len) || at % dev->page != 0u || len % dev->page != 0u) {
		dev->violations++;
		return -EINVAL;
	}
	const bool cut = dev->cut.kind == NOR_CUT_IN_ERASE && dev->cut.call == call;

	for (uint32_t p = 0; p < len / dev->page; p++) {
		uint8_t *page = dev->mem + at + p * dev->page;
		const uint32_t blocks = dev->page / dev->block;
		bool *written = dev->written + (at + p * dev->page) / dev->block;

		if (cut && p == dev->cut.at) {
			/* Half-erased: the first half done, the rest with some bits set. */
			memset(page, PEFT_FLASH_ERASED, dev->page / 2u);
			for (uint32_t i = dev->page / 2u; i < dev->page; i++) {
				page[i] |= noise(dev);
			}
			/* Unknown state: a later write there without an erase is a double write. */
			for (uint32_t b = 0; b < blocks; b++) {
				written[b] = true;
			}
			dev->dead = true;
			return -EIO;
		}
		memset(page, PEFT_FLASH_ERASED, dev->page);
		memset(written, 0, sizeof(bool) * blocks);
		dev->pages_erased++;
	}
	return 0;
}

void nor_region_init(struct nor_region *r, struct nor_fake *dev, uint32_t base, uint32_t size)
{
	r->dev = dev;
	r->base = base;
	r->flash = (struct peft_flash){
		.read = fake_read,
		.write = fake_write,
		.erase = fake_erase,
		.size = size,
		.erase_size = dev->page,
		.write_size = dev->block,
	};
}
