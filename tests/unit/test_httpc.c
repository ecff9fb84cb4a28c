/*
 * test_httpc: the pure parts of the HTTP client: which step a failed
 * transfer failed at (httpc_classify), and which proxy libcurl uses for a
 * URL, from the configuration or the environment (httpc_proxy_for).
 */
#include <stdlib.h>
#include <string.h>

#include "core/httpc.h"
#include "testutil.h"

static void
clear_proxy_env(void)
{
	static const char *const names[] = { "http_proxy", "HTTP_PROXY",
	    "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
	    "no_proxy", "NO_PROXY", NULL };
	size_t i;

	for (i = 0; names[i] != NULL; i++)
		unsetenv(names[i]);
}

static void
test_classify(void **state)
{
	(void)state;
	assert_int_equal(httpc_classify(CURLE_OK, 204, 0, 0), HTTPC_OK);
	assert_int_equal(httpc_classify(CURLE_OK, 401, 0, 0), HTTPC_FAIL_AUTH);
	assert_int_equal(httpc_classify(CURLE_OK, 403, 0, 1), HTTPC_FAIL_AUTH);
	assert_int_equal(httpc_classify(CURLE_OK, 503, 0, 0), HTTPC_FAIL_HTTP);
	assert_int_equal(httpc_classify(CURLE_OK, 407, 0, 1),
	    HTTPC_FAIL_PROXY);
	assert_int_equal(httpc_classify(CURLE_COULDNT_RESOLVE_HOST, 0, 0, 0),
	    HTTPC_FAIL_DNS);
	assert_int_equal(httpc_classify(CURLE_COULDNT_RESOLVE_PROXY, 0, 0, 1),
	    HTTPC_FAIL_PROXY);
	/* through a proxy, the only connection made is to the proxy */
	assert_int_equal(httpc_classify(CURLE_COULDNT_CONNECT, 0, 0, 1),
	    HTTPC_FAIL_PROXY);
	assert_int_equal(httpc_classify(CURLE_COULDNT_CONNECT, 0, 0, 0),
	    HTTPC_FAIL_CONNECT);
	/* the proxy refused the tunnel, whatever the result code says */
	assert_int_equal(httpc_classify(CURLE_RECV_ERROR, 0, 403, 1),
	    HTTPC_FAIL_PROXY);
	assert_int_equal(httpc_classify(CURLE_PEER_FAILED_VERIFICATION, 0, 0,
	    0), HTTPC_FAIL_TLS);
	assert_int_equal(httpc_classify(CURLE_SSL_CACERT_BADFILE, 0, 0, 1),
	    HTTPC_FAIL_TLS);
	assert_int_equal(httpc_classify(CURLE_OPERATION_TIMEDOUT, 0, 0, 0),
	    HTTPC_FAIL_TIMEOUT);
	assert_string_equal(httpc_failure_name(HTTPC_FAIL_TLS), "tls");
	assert_string_equal(httpc_failure_name(HTTPC_FAIL_PROXY), "proxy");
}

static void
test_proxy_configured(void **state)
{
	char buf[HTTPC_PROXY_TEXT_MAX];
	const char *src;

	(void)state;
	clear_proxy_env();
	setenv("https_proxy", "http://env:1", 1);
	assert_string_equal(httpc_proxy_for("https://o.example/x",
	    "http://user:secret@p:3128", NULL, "orchestrator.proxy", buf,
	    sizeof(buf), &src), "http://p:3128");
	assert_string_equal(src, "orchestrator.proxy");
	/* no_proxy spares a host, its subdomains, and "*" every host */
	assert_string_equal(httpc_proxy_for("https://o.example/x", "http://p:1",
	    "a.test, example", "k", buf, sizeof(buf), &src), "");
	assert_string_equal(httpc_proxy_for("https://o.example:8443", "http://p:1",
	    ".example", "k", buf, sizeof(buf), &src), "");
	assert_string_equal(httpc_proxy_for("https://notexample.org", "http://p:1",
	    "example.org", "k", buf, sizeof(buf), &src), "http://p:1");
	assert_string_equal(httpc_proxy_for("http://[::1]:80/", "http://p:1",
	    "*", "k", buf, sizeof(buf), &src), "");
	clear_proxy_env();
}

static void
test_proxy_environment(void **state)
{
	char buf[HTTPC_PROXY_TEXT_MAX];
	const char *src;

	(void)state;
	clear_proxy_env();
	/* libcurl ignores upper-case HTTP_PROXY for http:// URLs */
	setenv("HTTP_PROXY", "http://upper:1", 1);
	assert_string_equal(httpc_proxy_for("http://o", NULL, NULL, "k", buf,
	    sizeof(buf), &src), "");
	setenv("http_proxy", "http://lower:1", 1);
	assert_string_equal(httpc_proxy_for("http://o", "", NULL, "k", buf,
	    sizeof(buf), &src), "http://lower:1");
	assert_string_equal(src, "http_proxy");
	setenv("HTTPS_PROXY", "http://s:pw@secure:1", 1);
	assert_string_equal(httpc_proxy_for("https://o", NULL, NULL, "k", buf,
	    sizeof(buf), &src), "http://secure:1");
	assert_string_equal(src, "HTTPS_PROXY");
	setenv("NO_PROXY", "o", 1);
	assert_string_equal(httpc_proxy_for("https://o", NULL, NULL, "k", buf,
	    sizeof(buf), &src), "");
	/* a configured no_proxy replaces the environment's */
	assert_string_equal(httpc_proxy_for("https://o", NULL, "other", "k",
	    buf, sizeof(buf), &src), "http://secure:1");
	clear_proxy_env();
	setenv("ALL_PROXY", "socks5h://all:1", 1);
	assert_string_equal(httpc_proxy_for("https://o", NULL, NULL, "k", buf,
	    sizeof(buf), &src), "socks5h://all:1");
	clear_proxy_env();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_proxy_configured),
		cmocka_unit_test(test_proxy_environment),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
