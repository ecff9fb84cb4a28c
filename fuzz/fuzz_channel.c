/*
 * fuzz_channel: libFuzzer target for the channel frame codec.
 *
 * Checks two properties on every input: a frame that decodes re-encodes to
 * the very same bytes, and encode refuses exactly what decode refuses (with
 * the same error) when given the header fields taken from the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t fuzz_out[CHANNEL_MAX_FRAME];

static void
fuzz_check(int ok)
{
	if (!ok)
		abort();
}

/* A decoded frame must survive a round trip byte for byte. */
static void
fuzz_roundtrip(const uint8_t *data, size_t size)
{
	struct channel_frame f;
	ssize_t n;

	if (channel_decode(data, size, &f) != CHANNEL_OK)
		return;
	fuzz_check(f.length == size - CHANNEL_HEADER_SIZE);
	fuzz_check(f.payload == (const char *)data + CHANNEL_HEADER_SIZE);
	fuzz_check(channel_type_from_worker(f.type) +
	    channel_type_from_master(f.type) == 1);
	n = channel_encode(f.type, f.flags, f.payload, f.length, fuzz_out,
	    sizeof(fuzz_out));
	fuzz_check(n >= 0 && (size_t)n == size);
	fuzz_check(memcmp(fuzz_out, data, size) == 0);
}

/* Encode from the input's header fields; decode must agree. */
static void
fuzz_encode_agrees(const uint8_t *data, size_t size)
{
	struct channel_frame f;
	uint16_t type, flags;
	ssize_t n;
	size_t len;
	int rc;

	if (size < 4)
		return;
	type = (uint16_t)((data[0] << 8) | data[1]);
	flags = (uint16_t)((data[2] << 8) | data[3]);
	len = size - 4;
	n = channel_encode(type, flags, data + 4, len, fuzz_out,
	    sizeof(fuzz_out));
	if (n < 0) {
		fuzz_check(n == CHANNEL_ETYPE || n == CHANNEL_EFLAGS ||
		    n == CHANNEL_ETOOBIG);
		fuzz_check(channel_strerror((int)n)[0] != '\0');
		return;
	}
	rc = channel_decode(fuzz_out, (size_t)n, &f);
	fuzz_check(rc == CHANNEL_OK);
	fuzz_check(f.type == type && f.flags == flags && f.length == len);
	fuzz_check(memcmp(f.payload, data + 4, len) == 0);
	fuzz_check(strcmp(channel_type_name(type), "?") != 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_roundtrip(data, size);
	fuzz_encode_agrees(data, size);
	return 0;
}
