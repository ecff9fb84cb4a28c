/*
 * fuzz_config: libFuzzer target for loading and validating a configuration.
 *
 * The input is the text of a configuration file, loaded by
 * config_load_string() (what `egressd -t` does with stdin, and what
 * config_load_file() does after libconfig has read the file: the same
 * walk over every key).  A refusal must say why and leave nothing
 * allocated; an accepted configuration must be complete: every path
 * absolute (relative ones resolved against the base directory), every list
 * as long as it says.  Inputs with "@include" are skipped: they read other
 * files, and the administrator's files are trusted.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

#define FUZZ_BASEDIR	"/nonexistent/egressd-fuzz"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check(int ok)
{
	if (!ok)
		abort();
}

/* A path key: empty (where allowed) or absolute. */
static void
fuzz_path(const char *p, int may_be_empty)
{
	fuzz_check(p != NULL);
	fuzz_check(p[0] == '/' || (may_be_empty && p[0] == '\0'));
}

static void
fuzz_strlist(const struct config_strlist *l)
{
	size_t i;

	fuzz_check(l->count == 0 || l->items != NULL);
	for (i = 0; i < l->count; i++)
		fuzz_check(l->items[i] != NULL);
}

static void
fuzz_commands(const struct egressd_config *c)
{
	const struct config_command *cmd;
	size_t i;

	fuzz_check(c->operations.command.count == 0 ||
	    c->operations.command.commands != NULL);
	for (i = 0; i < c->operations.command.count; i++) {
		cmd = &c->operations.command.commands[i];
		fuzz_check(cmd->name != NULL && cmd->argv != NULL);
		fuzz_check(cmd->argc > 0 && cmd->argv[cmd->argc] == NULL);
	}
	fuzz_check(c->operations.sqlite.count == 0 ||
	    c->operations.sqlite.databases != NULL);
	for (i = 0; i < c->operations.sqlite.count; i++) {
		fuzz_check(c->operations.sqlite.databases[i].name != NULL);
		fuzz_path(c->operations.sqlite.databases[i].path, 0);
	}
}

static void
fuzz_accepted(const struct egressd_config *c)
{
	const char *f = c->log.file;

	fuzz_check(c->path != NULL);
	fuzz_path(c->server.pidfile, 0);
	fuzz_path(c->server.state_dir, 0);
	fuzz_path(c->server.control_socket, 0);
	fuzz_path(c->orchestrator.token_file, 1);
	fuzz_path(c->orchestrator.ca_file, 1);
	fuzz_path(c->operations.storage.root, 1);
	fuzz_check(strcmp(f, "stderr") == 0 || strcmp(f, "syslog") == 0 ||
	    f[0] == '/');
	fuzz_check(c->orchestrator.url != NULL);
	fuzz_check(c->server.workers >= 1);
	fuzz_strlist(&c->operations.storage.capabilities);
	fuzz_strlist(&c->operations.http.allow);
	fuzz_strlist(&c->operations.http.capabilities);
	fuzz_strlist(&c->operations.command.capabilities);
	fuzz_strlist(&c->operations.command.environment);
	fuzz_strlist(&c->operations.sqlite.capabilities);
	fuzz_strlist(&c->operations.batch.capabilities);
	fuzz_strlist(&c->operations.upgrade.allow_keys);
	fuzz_strlist(&c->operations.upgrade.capabilities);
	fuzz_commands(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct egressd_config cfg;
	char err[CONFIG_ERR_MAX], *text;

	if (memmem(data, size, "@include", 8) != NULL)
		return 0;
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	err[0] = '\0';
	if (config_load_string(&cfg, text, "fuzz.conf", FUZZ_BASEDIR, err,
	    sizeof(err)) == 0) {
		fuzz_accepted(&cfg);
		config_free(&cfg);
	} else
		fuzz_check(err[0] != '\0');
	free(text);
	return 0;
}
