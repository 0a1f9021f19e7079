/* CRC-32 against published check values (the "123456789" check value of
 * CRC-32/ISO-HDLC is 0xCBF43926) and chunked == one-shot. */
#include <string.h>

#include "peft/peft_crc32.h"
#include "peft/peft_status.h"
#include "peft_test.h"

int main(void)
{
	const char *check = "123456789";

	PEFT_CHECK_EQ_INT(peft_crc32_update(0, check, strlen(check)), 0xCBF43926u);
	PEFT_CHECK_EQ_INT(peft_crc32_update(0, "", 0), 0u);
	uint32_t chunked = peft_crc32_update(peft_crc32_update(0, check, 4), check + 4, 5);
	PEFT_CHECK_EQ_INT(chunked, 0xCBF43926u);
	/* "The quick brown fox jumps over the lazy dog" -> 0x414FA339 (zlib). */
	const char *fox = "The quick brown fox jumps over the lazy dog";
	PEFT_CHECK_EQ_INT(peft_crc32_update(0, fox, strlen(fox)), 0x414FA339u);
	PEFT_CHECK(strcmp(peft_status_str(PEFT_ERR_PLAN_CRC), "plan: CRC mismatch") == 0);
	return 0;
}
