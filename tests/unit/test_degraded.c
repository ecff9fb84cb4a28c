/* Unit tests for master/degraded.c: the reasons health is degraded. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "master/degraded.h"

static void
test_set_clear(void **state)
{
	struct degraded d;
	cJSON *list;

	(void)state;
	memset(&d, 0, sizeof(d));
	assert_int_equal(degraded_count(&d), 0);
	assert_int_equal(degraded_set(&d, "database", "gone %d", 1), 1);
	/* The same text again is no news (not logged twice). */
	assert_int_equal(degraded_set(&d, "database", "gone %d", 1), 0);
	assert_int_equal(degraded_set(&d, "pidfile", "removed"), 1);
	assert_int_equal(degraded_set(&d, "database", "gone %d", 2), 1);
	assert_int_equal(degraded_count(&d), 2);
	assert_string_equal(degraded_get(&d, "database"), "gone 2");
	list = degraded_json(&d);
	assert_non_null(list);
	assert_int_equal(cJSON_GetArraySize(list), 2);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
	    cJSON_GetArrayItem(list, 1), "reason")), "removed");
	cJSON_Delete(list);
	assert_int_equal(degraded_clear(&d, "database"), 1);
	assert_int_equal(degraded_clear(&d, "database"), 0);
	assert_null(degraded_get(&d, "database"));
	assert_string_equal(degraded_get(&d, "pidfile"), "removed");
	assert_int_equal(degraded_count(&d), 1);
}

/* A full table keeps what it has and lists no more (it logs them). */
static void
test_full(void **state)
{
	struct degraded d;
	char key[DEGRADED_KEY_MAX];
	int i;

	(void)state;
	memset(&d, 0, sizeof(d));
	for (i = 0; i < DEGRADED_MAX; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(degraded_set(&d, key, "r%d", i), 1);
	}
	assert_int_equal(degraded_set(&d, "one more", "r"), 0);
	assert_int_equal(degraded_count(&d), DEGRADED_MAX);
	assert_null(degraded_get(&d, "one more"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_clear),
		cmocka_unit_test(test_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
