/*
 * Unit tests for capability's pure rules: resource pattern matching, the
 * rights list (membership and validation) and liveness.
 */

#include <string.h>

#include "procmgr/capability.h"
#include "testutil.h"

static void
test_pattern_exact(void **state)
{
	(void)state;
	assert_true(cap_resource_matches("http:example.com:443",
	    "http:example.com:443"));
	assert_false(cap_resource_matches("http:example.com:443",
	    "http:example.com:4430"));
	assert_false(cap_resource_matches("http:example.com:443",
	    "http:example.com"));
	assert_false(cap_resource_matches("storage:a", "storage:A"));
	assert_true(cap_resource_matches("", ""));
	assert_false(cap_resource_matches("", "x"));
}

static void
test_pattern_prefix(void **state)
{
	(void)state;
	assert_true(cap_resource_matches("storage:reports/*",
	    "storage:reports/2026/a.csv"));
	assert_true(cap_resource_matches("storage:reports/*",
	    "storage:reports/"));
	assert_false(cap_resource_matches("storage:reports/*",
	    "storage:reports"));
	assert_false(cap_resource_matches("storage:reports/*",
	    "storage:other/a.csv"));
	assert_true(cap_resource_matches("storage:*", "storage:x/y/z"));
	assert_true(cap_resource_matches("*", "anything:at all"));
	assert_true(cap_resource_matches("*", ""));
	/* Only a trailing star is a wildcard. */
	assert_false(cap_resource_matches("storage:*/a", "storage:x/a"));
	assert_true(cap_resource_matches("storage:*/a", "storage:*/a"));
}

static void
test_rights_include(void **state)
{
	(void)state;
	assert_true(cap_rights_include("read", "read"));
	assert_true(cap_rights_include("read,write", "write"));
	assert_true(cap_rights_include("read,write,diff", "diff"));
	assert_false(cap_rights_include("read,write", "delete"));
	/* Whole names only. */
	assert_false(cap_rights_include("readwrite", "read"));
	assert_false(cap_rights_include("read", "rea"));
	assert_false(cap_rights_include("materialize", "link"));
	assert_false(cap_rights_include("", "read"));
	assert_false(cap_rights_include("read, write", "write"));
}

static void
test_rights_valid(void **state)
{
	char err[128];

	(void)state;
	assert_int_equal(cap_rights_valid("read", err, sizeof(err)), 0);
	assert_int_equal(cap_rights_valid("read,write,delete,execute,request,"
	    "materialize,link,diff", err, sizeof(err)), 0);
	assert_int_equal(cap_rights_valid("read,fly", err, sizeof(err)), -1);
	assert_string_equal(err, "unknown right \"fly\"");
	assert_int_equal(cap_rights_valid("READ", err, sizeof(err)), -1);
	assert_string_equal(err, "unknown right \"READ\"");
	assert_int_equal(cap_rights_valid("read,,write", err, sizeof(err)),
	    -1);
	assert_string_equal(err, "empty right in \"read,,write\"");
	assert_int_equal(cap_rights_valid("read, write", err, sizeof(err)),
	    -1);
	assert_string_equal(err, "unknown right \" write\"");
	assert_int_equal(cap_rights_valid("read,", err, sizeof(err)), -1);
	assert_string_equal(err, "empty right in \"read,\"");
	assert_int_equal(cap_rights_valid("", err, sizeof(err)), -1);
	assert_string_equal(err, "no rights given");
	assert_int_equal(cap_rights_valid(NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "no rights given");
}

static void
test_live(void **state)
{
	(void)state;
	assert_true(cap_live(0, 0, 1000));		/* never expires */
	assert_true(cap_live(1001, 0, 1000));
	assert_false(cap_live(1000, 0, 1000));		/* expiry: not after */
	assert_false(cap_live(999, 0, 1000));
	assert_false(cap_live(0, 500, 1000));		/* revoked */
	assert_false(cap_live(2000, 500, 1000));
}

static void
test_policy_names(void **state)
{
	(void)state;
	assert_string_equal(cap_policy_name(CAP_DENY), "DENY");
	assert_string_equal(cap_policy_name(CAP_ALLOW), "ALLOW");
	assert_string_equal(cap_policy_name(CAP_ALWAYS_ALLOW),
	    "ALWAYS_ALLOW");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pattern_exact),
		cmocka_unit_test(test_pattern_prefix),
		cmocka_unit_test(test_rights_include),
		cmocka_unit_test(test_rights_valid),
		cmocka_unit_test(test_live),
		cmocka_unit_test(test_policy_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
