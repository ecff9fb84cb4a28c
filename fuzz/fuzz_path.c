/*
 * fuzz_path: libFuzzer target for the path rules applied to what an
 * operation names: storage keys and list prefixes (storage_key_check,
 * storage_prefix_check) and agent process working directories
 * (procrule_normalize_cwd), and the spelling of keys in JSON
 * (storage_key_spell, storage_key_unspell).
 *
 * The input, up to its first NUL, is the path.  The storage checks are
 * compared with a plain restatement of their documented rules, so they
 * must accept exactly the keys those rules allow.  A normalised working
 * directory must be workspace-relative and clean: no leading '/', no
 * backslash, no empty, "." or ".." segment (only "." itself), shorter than
 * the buffer; normalising it again must give it back unchanged, and it
 * must not depend on the buffer size except for being refused as too long.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonutil.h"
#include "ops/ops_storage.h"
#include "procmgr/procmgr.h"

#define FUZZ_PATH_MAX	(2 * STORAGE_KEY_MAX)
#define FUZZ_TOO_LONG	"working directory too long"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check(int ok)
{
	if (!ok)
		abort();
}

/* The rules one segment of a key must follow. */
static bool
fuzz_segment_ok(const char *s, size_t n)
{
	size_t tl = strlen(STORAGE_TMP_PREFIX);

	if (n == 0 || (n == 1 && s[0] == '.') ||
	    (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	return n < tl || strncmp(s, STORAGE_TMP_PREFIX, tl) != 0;
}

/* A key as ops_storage.h describes it; a prefix's last segment is free. */
static bool
fuzz_key_ok(const char *p, bool prefix)
{
	size_t len = strlen(p), n;
	const char *seg = p, *end;

	if (len > STORAGE_KEY_MAX || p[0] == '/' || strchr(p, '\\') != NULL)
		return false;
	if (len == 0)
		return prefix;
	for (;;) {
		end = strchr(seg, '/');
		n = end != NULL ? (size_t)(end - seg) : strlen(seg);
		if (end == NULL)
			return prefix || fuzz_segment_ok(seg, n);
		if (!fuzz_segment_ok(seg, n))
			return false;
		seg = end + 1;
	}
}

static void
fuzz_storage(const char *p)
{
	char err[128];
	int key, prefix;

	err[0] = '\0';
	key = storage_key_check(p, err, sizeof(err));
	fuzz_check(key == 0 || key == -1);
	fuzz_check(key == 0 || err[0] != '\0');
	fuzz_check((key == 0) == fuzz_key_ok(p, false));
	err[0] = '\0';
	prefix = storage_prefix_check(p, err, sizeof(err));
	fuzz_check(prefix == 0 || err[0] != '\0');
	fuzz_check((prefix == 0) == fuzz_key_ok(p, true));
	/* Every key is a prefix of itself. */
	fuzz_check(key != 0 || prefix == 0);
}

/*
 * Key spellings: a key's spelling is valid UTF-8 and names it again; a
 * spelling that is accepted is the one spelling of what it names.
 */
static void
fuzz_spelling(const char *p)
{
	char spelled[4 * FUZZ_PATH_MAX + 1], key[FUZZ_PATH_MAX + 1];
	char err[160];

	if (strchr(p, '\\') == NULL) {
		fuzz_check(storage_key_spell(p, spelled, sizeof(spelled)) == 0);
		fuzz_check(json_utf8_valid(spelled, strlen(spelled)));
		if (strlen(spelled) <= STORAGE_SPELLED_MAX) {
			fuzz_check(storage_key_unspell(spelled, key,
			    sizeof(key), err, sizeof(err)) == 0);
			fuzz_check(strcmp(key, p) == 0);
		}
	}
	err[0] = '\0';
	if (storage_key_unspell(p, key, sizeof(key), err, sizeof(err)) == -1) {
		fuzz_check(err[0] != '\0');
		return;
	}
	fuzz_check(json_utf8_valid(p, strlen(p)));
	fuzz_check(strchr(key, '\\') == NULL);
	fuzz_check(storage_key_spell(key, spelled, sizeof(spelled)) == 0);
	fuzz_check(strcmp(spelled, p) == 0);
}

/* The shape of a normalised working directory. */
static void
fuzz_clean_cwd(const char *c, size_t outlen)
{
	const char *seg, *end;
	size_t n;

	fuzz_check(strlen(c) < outlen);
	fuzz_check(c[0] != '\0' && c[0] != '/');
	fuzz_check(strchr(c, '\\') == NULL);
	if (strcmp(c, ".") == 0)
		return;
	for (seg = c;; seg = end + 1) {
		end = strchr(seg, '/');
		n = end != NULL ? (size_t)(end - seg) : strlen(seg);
		fuzz_check(n > 0);
		fuzz_check(!(n == 1 && seg[0] == '.'));
		fuzz_check(!(n == 2 && seg[0] == '.' && seg[1] == '.'));
		if (end == NULL)
			break;
	}
}

static void
fuzz_cwd(const char *p, size_t small)
{
	char out[PM_CWD_MAX], again[PM_CWD_MAX], tiny[PM_CWD_MAX];
	char err[256];

	err[0] = '\0';
	if (procrule_normalize_cwd(p, out, sizeof(out), err,
	    sizeof(err)) == -1) {
		fuzz_check(err[0] != '\0');
		/* Refused with room to spare: refused with less too. */
		if (strncmp(err, FUZZ_TOO_LONG, strlen(FUZZ_TOO_LONG)) != 0)
			fuzz_check(procrule_normalize_cwd(p, tiny, small, err,
			    sizeof(err)) == -1);
		return;
	}
	fuzz_clean_cwd(out, sizeof(out));
	fuzz_check(procrule_normalize_cwd(out, again, sizeof(again), err,
	    sizeof(err)) == 0);
	fuzz_check(strcmp(out, again) == 0);
	if (procrule_normalize_cwd(p, tiny, small, err, sizeof(err)) == 0)
		fuzz_check(strcmp(out, tiny) == 0);
	else
		fuzz_check(strncmp(err, FUZZ_TOO_LONG,
		    strlen(FUZZ_TOO_LONG)) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char p[FUZZ_PATH_MAX + 1];
	size_t n = size < FUZZ_PATH_MAX ? size : FUZZ_PATH_MAX;
	size_t small;

	memcpy(p, data, n);
	p[n] = '\0';
	/* A buffer size for the "too long" path: the input's length, mod. */
	small = 1 + n % 64;
	fuzz_storage(p);
	fuzz_spelling(p);
	fuzz_cwd(p, small);
	return 0;
}
