/* Unit tests for the pidfile module: parsing, creation, held and stale files. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "master/pidfile.h"
#include "testutil.h"

struct fixture {
	char dir[64];
	char path[PATH_MAX];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	if (tu_mkdtemp(f->dir, sizeof(f->dir), "pidfile") == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/egressd.pid", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tu_remove_tree(f->dir);
	free(f);
	return 0;
}

static void
test_parse(void **state)
{
	(void)state;
	assert_int_equal(pidfile_parse("123\n", 4), 123);
	assert_int_equal(pidfile_parse("123", 3), 123);
	assert_int_equal(pidfile_parse("", 0), -1);
	assert_int_equal(pidfile_parse("\n", 1), -1);
	assert_int_equal(pidfile_parse("0\n", 2), -1);
	assert_int_equal(pidfile_parse("-5\n", 3), -1);
	assert_int_equal(pidfile_parse("12a\n", 4), -1);
	assert_int_equal(pidfile_parse(" 12\n", 4), -1);
	assert_int_equal(pidfile_parse("99999999999\n", 12), -1);
	assert_int_equal(pidfile_parse("2147483648", 10), -1);
	assert_int_equal(pidfile_parse("2147483647", 10), 2147483647);
}

static void
test_acquire_new_write_release(void **state)
{
	struct fixture *f = *state;
	struct pidfile pf;
	char err[256];
	pid_t other = -1;

	assert_int_equal(pidfile_acquire(&pf, f->path, &other, err,
	    sizeof(err)), PIDFILE_ACQUIRED);
	assert_int_equal(other, 0);
	assert_int_equal(pidfile_write(&pf, 4242), 0);
	tu_assert_file(f->path, "4242\n");
	/* A shorter pid must not leave digits of the longer one behind. */
	assert_int_equal(pidfile_write(&pf, 7), 0);
	tu_assert_file(f->path, "7\n");
	pidfile_release(&pf);
	assert_int_equal(access(f->path, F_OK), -1);
	assert_int_equal(pf.fd, -1);
}

static void
test_held_is_refused(void **state)
{
	struct fixture *f = *state;
	struct pidfile first, second;
	char err[256];
	pid_t other = 0;

	assert_int_equal(pidfile_acquire(&first, f->path, &other, err,
	    sizeof(err)), PIDFILE_ACQUIRED);
	assert_int_equal(pidfile_write(&first, getpid()), 0);
	/* flock conflicts between open file descriptions, even in-process. */
	assert_int_equal(pidfile_acquire(&second, f->path, &other, err,
	    sizeof(err)), PIDFILE_HELD);
	assert_int_equal(other, getpid());
	assert_int_equal(second.fd, -1);
	assert_int_equal(access(f->path, F_OK), 0);
	pidfile_release(&first);
}

static void
test_stale_is_taken_over(void **state)
{
	struct fixture *f = *state;
	struct pidfile pf;
	char err[256];
	pid_t other = 0;

	tu_write_file(f->path, "99999999\n", 0644);
	assert_int_equal(pidfile_acquire(&pf, f->path, &other, err,
	    sizeof(err)), PIDFILE_STALE);
	assert_int_equal(other, 99999999);
	assert_int_equal(pidfile_write(&pf, 12345), 0);
	tu_assert_file(f->path, "12345\n");
	pidfile_release(&pf);
}

static void
test_stale_garbage_is_taken_over(void **state)
{
	struct fixture *f = *state;
	struct pidfile pf;
	char err[256];
	pid_t other = -1;

	tu_write_file(f->path, "not a pid at all", 0644);
	assert_int_equal(pidfile_acquire(&pf, f->path, &other, err,
	    sizeof(err)), PIDFILE_STALE);
	assert_int_equal(other, 0);
	pidfile_release(&pf);
}

static void
test_unwritable_directory_is_an_error(void **state)
{
	struct fixture *f = *state;
	struct pidfile pf;
	char err[256], path[PATH_MAX + 32];
	pid_t other;

	(void)f;
	snprintf(path, sizeof(path), "%s/missing-dir/egressd.pid", f->dir);
	assert_int_equal(pidfile_acquire(&pf, path, &other, err,
	    sizeof(err)), PIDFILE_ERROR);
	assert_non_null(strstr(err, "missing-dir/egressd.pid"));
	assert_non_null(strstr(err, "No such file or directory"));
}

static void
test_forget_keeps_file(void **state)
{
	struct fixture *f = *state;
	struct pidfile pf, again;
	char err[256];
	pid_t other;

	assert_int_equal(pidfile_acquire(&pf, f->path, &other, err,
	    sizeof(err)), PIDFILE_ACQUIRED);
	pidfile_forget(&pf);
	assert_int_equal(access(f->path, F_OK), 0);
	/* The lock went with the descriptor: the file is now stale. */
	assert_int_equal(pidfile_acquire(&again, f->path, &other, err,
	    sizeof(err)), PIDFILE_STALE);
	pidfile_release(&again);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test_setup_teardown(test_acquire_new_write_release,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_is_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stale_is_taken_over, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stale_garbage_is_taken_over,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_unwritable_directory_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forget_keeps_file, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
