/*
 * ops: what every handler shares — error results, completion, the
 * capability check through the host, writes (see include/ops/ops.h).
 * The handler table is above the handlers, in dispatch.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/jsonutil.h"
#include "ops/ops.h"

/*
 * Length of the start of a UTF-8 character at s that was cut short (a
 * lead byte and fewer continuation bytes than it announces, then the end
 * or a byte that is no continuation), or 0 when s starts with no such
 * thing.
 */
static size_t
ops_utf8_cut(const unsigned char *s, size_t len)
{
	size_t need, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 4;
	else
		return 0;
	for (i = 1; i < need && i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return i;
	return i < need ? i : 0;
}

/*
 * msg (len bytes, no NUL) as valid UTF-8 into out (3 * len + 1 bytes): a
 * character that a cut split, at the end of the buffer or where a "%.Ns"
 * precision ended, is left out whole; any other invalid byte becomes
 * U+FFFD.
 */
static void
ops_utf8_clean(const char *msg, size_t len, char *out)
{
	const unsigned char *s = (const unsigned char *)msg;
	size_t i = 0, n;

	while (i < len) {
		if ((n = json_utf8_len(msg + i, len - i)) > 0) {
			memcpy(out, msg + i, n);
			out += n;
			i += n;
		} else if ((n = ops_utf8_cut(s + i, len - i)) > 0)
			i += n;
		else {
			memcpy(out, "\xef\xbf\xbd", 3);
			out += 3;
			i++;
		}
	}
	*out = '\0';
}

cJSON *
ops_error(const char *type, const char *fmt, ...)
{
	char msg[OPS_ERROR_MAX], clean[3 * OPS_ERROR_MAX];
	va_list ap;
	cJSON *o;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	ops_utf8_clean(msg, (size_t)n < sizeof(msg) ? (size_t)n :
	    sizeof(msg) - 1, clean);
	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "error", clean);
	cJSON_AddStringToObject(o, "error_type", type);
	return o;
}

int
ops_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
ops_is_error(const cJSON *result)
{
	return cJSON_IsObject(result) &&
	    cJSON_HasObjectItem(result, "error");
}

/* What wraps a result on its way out: {"result":TEXT}. */
#define OPS_RESULT_WRAP (sizeof("{\"result\":}") - 1)

int
ops_result_fits(size_t text_len, long long max_body)
{
	return max_body > 0 && text_len <= (unsigned long long)max_body &&
	    (unsigned long long)max_body - text_len >= OPS_RESULT_WRAP;
}

cJSON *
ops_result_too_large(size_t text_len, long long max_body)
{
	return ops_error("limit_exceeded", "the result (%zu bytes) is larger "
	    "than orchestrator.max_body_bytes (%lld bytes) allows; it is not "
	    "sent", text_len, max_body);
}

void
ops_finish(struct op_run *run, cJSON *result)
{
	run->cancel = NULL;
	run->state = NULL;
	if (result == NULL)
		result = ops_error("internal", "out of memory");
	run->done(run, result);
}

void
ops_cancel(struct op_run *run)
{
	void (*cancel)(struct op_run *) = run->cancel;

	run->cancel = NULL;
	if (cancel != NULL)
		cancel(run);
	run->state = NULL;
}

int
ops_check(struct op_run *run, const char *resource, const char *right,
    cJSON **error)
{
	const struct op_host *host = run->ctx ? run->ctx->host : NULL;

	*error = NULL;
	if (host == NULL || host->check == NULL)
		return 0;
	return host->check(run, resource, right, error);
}
