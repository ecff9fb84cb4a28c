/*
 * test_channel: the frame codec (every type, every error, the size
 * boundaries) and channel_send/channel_recv over a real SOCK_SEQPACKET
 * socketpair.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/channel.h"
#include "testutil.h"

#define TEST_PAYLOAD	"{\"pid\":42}"
#define TEST_RECV_SIZE	(CHANNEL_MAX_FRAME + 1)

static void
put_header(uint8_t *p, uint16_t type, uint16_t flags, uint32_t length)
{
	p[0] = (uint8_t)(type >> 8);
	p[1] = (uint8_t)type;
	p[2] = (uint8_t)(flags >> 8);
	p[3] = (uint8_t)flags;
	p[4] = (uint8_t)(length >> 24);
	p[5] = (uint8_t)(length >> 16);
	p[6] = (uint8_t)(length >> 8);
	p[7] = (uint8_t)length;
}

static void
test_roundtrip_every_type(void **state)
{
	uint8_t buf[CHANNEL_HEADER_SIZE + sizeof(TEST_PAYLOAD)];
	struct channel_frame f;
	size_t len = strlen(TEST_PAYLOAD);
	uint16_t type, flags;
	ssize_t n;

	(void)state;
	for (type = 1; type <= CH_TYPE_MAX; type++) {
		flags = type == CH_STOP ? CH_FLAG_FAST : 0;
		n = channel_encode(type, flags, TEST_PAYLOAD, len, buf,
		    sizeof(buf));
		assert_int_equal(n, CHANNEL_HEADER_SIZE + len);
		assert_int_equal(channel_decode(buf, (size_t)n, &f),
		    CHANNEL_OK);
		assert_int_equal(f.type, type);
		assert_int_equal(f.flags, flags);
		assert_int_equal(f.length, len);
		assert_memory_equal(f.payload, TEST_PAYLOAD, len);
		assert_string_not_equal(channel_type_name(type), "?");
	}
}

static void
test_wire_format_is_network_order(void **state)
{
	uint8_t buf[CHANNEL_HEADER_SIZE + 2];
	const uint8_t want[] = { 0, CH_STOP, 0, CH_FLAG_FAST, 0, 0, 0, 2,
	    '{', '}' };

	(void)state;
	assert_int_equal(channel_encode(CH_STOP, CH_FLAG_FAST, "{}", 2, buf,
	    sizeof(buf)), sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void
test_empty_payload(void **state)
{
	uint8_t buf[CHANNEL_HEADER_SIZE];
	struct channel_frame f;

	(void)state;
	assert_int_equal(channel_encode(CH_WORK_AVAILABLE, 0, NULL, 0, buf,
	    sizeof(buf)), CHANNEL_HEADER_SIZE);
	assert_int_equal(channel_decode(buf, sizeof(buf), &f), CHANNEL_OK);
	assert_int_equal(f.type, CH_WORK_AVAILABLE);
	assert_int_equal(f.length, 0);
}

static void
test_decode_truncated(void **state)
{
	uint8_t buf[CHANNEL_HEADER_SIZE] = { 0 };
	struct channel_frame f;

	(void)state;
	assert_int_equal(channel_decode(buf, 0, &f), CHANNEL_ETRUNC);
	assert_int_equal(channel_decode(NULL, 0, &f), CHANNEL_ETRUNC);
	assert_int_equal(channel_decode(buf, CHANNEL_HEADER_SIZE - 1, &f),
	    CHANNEL_ETRUNC);
}

static void
test_decode_type(void **state)
{
	uint8_t buf[CHANNEL_HEADER_SIZE];
	struct channel_frame f;

	(void)state;
	put_header(buf, 0, 0, 0);
	assert_int_equal(channel_decode(buf, sizeof(buf), &f), CHANNEL_ETYPE);
	put_header(buf, CH_TYPE_MAX + 1, 0, 0);
	assert_int_equal(channel_decode(buf, sizeof(buf), &f), CHANNEL_ETYPE);
	put_header(buf, 0xffff, 0, 0);
	assert_int_equal(channel_decode(buf, sizeof(buf), &f), CHANNEL_ETYPE);
}

static void
test_decode_flags(void **state)
{
	uint8_t buf[CHANNEL_HEADER_SIZE];
	struct channel_frame f;

	(void)state;
	put_header(buf, CH_STOP, 0x0002, 0);
	assert_int_equal(channel_decode(buf, sizeof(buf), &f),
	    CHANNEL_EFLAGS);
	put_header(buf, CH_STOP, 0x8000 | CH_FLAG_FAST, 0);
	assert_int_equal(channel_decode(buf, sizeof(buf), &f),
	    CHANNEL_EFLAGS);
}

static void
test_decode_length(void **state)
{
	uint8_t buf[CHANNEL_HEADER_SIZE + 6] = { 0 };
	struct channel_frame f;

	(void)state;
	put_header(buf, CH_HEARTBEAT, 0, 5);
	assert_int_equal(channel_decode(buf, CHANNEL_HEADER_SIZE + 4, &f),
	    CHANNEL_ELENGTH);
	assert_int_equal(channel_decode(buf, CHANNEL_HEADER_SIZE + 6, &f),
	    CHANNEL_ELENGTH);
	assert_int_equal(channel_decode(buf, CHANNEL_HEADER_SIZE + 5, &f),
	    CHANNEL_OK);
}

static void
test_decode_check_order(void **state)
{
	uint8_t buf[CHANNEL_HEADER_SIZE];
	struct channel_frame f;

	(void)state;
	/* Every fault at once: the shortest check wins. */
	put_header(buf, 0, 0xffff, 0xffffffff);
	assert_int_equal(channel_decode(buf, CHANNEL_HEADER_SIZE - 1, &f),
	    CHANNEL_ETRUNC);
	assert_int_equal(channel_decode(buf, sizeof(buf), &f), CHANNEL_ETYPE);
	put_header(buf, CH_HELLO, 0xffff, 0xffffffff);
	assert_int_equal(channel_decode(buf, sizeof(buf), &f),
	    CHANNEL_EFLAGS);
	put_header(buf, CH_HELLO, 0, 0xffffffff);
	assert_int_equal(channel_decode(buf, sizeof(buf), &f),
	    CHANNEL_ETOOBIG);
}

static void
test_decode_leaves_frame_on_error(void **state)
{
	uint8_t buf[CHANNEL_HEADER_SIZE];
	struct channel_frame f = { 7, 7, 7, NULL };

	(void)state;
	put_header(buf, CH_HELLO, 0, 1);
	assert_int_equal(channel_decode(buf, sizeof(buf), &f),
	    CHANNEL_ELENGTH);
	assert_int_equal(f.type, 7);
	assert_null(f.payload);
}

static void
test_encode_errors(void **state)
{
	uint8_t buf[CHANNEL_HEADER_SIZE + 2];

	(void)state;
	assert_int_equal(channel_encode(0, 0, NULL, 0, buf, sizeof(buf)),
	    CHANNEL_ETYPE);
	assert_int_equal(channel_encode(CH_TYPE_MAX + 1, 0, NULL, 0, buf,
	    sizeof(buf)), CHANNEL_ETYPE);
	assert_int_equal(channel_encode(CH_STOP, 0x0004, NULL, 0, buf,
	    sizeof(buf)), CHANNEL_EFLAGS);
	assert_int_equal(channel_encode(CH_HELLO, 0, "x",
	    CHANNEL_MAX_PAYLOAD + 1, buf, sizeof(buf)), CHANNEL_ETOOBIG);
	assert_int_equal(channel_encode(CH_HELLO, 0, NULL, 1, buf,
	    sizeof(buf)), CHANNEL_ELENGTH);
	assert_int_equal(channel_encode(CH_HELLO, 0, "{}", 2, buf,
	    sizeof(buf) - 1), CHANNEL_ESPACE);
	assert_int_equal(channel_encode(CH_HELLO, 0, NULL, 0, buf,
	    CHANNEL_HEADER_SIZE - 1), CHANNEL_ESPACE);
	assert_int_equal(channel_encode(CH_HELLO, 0, NULL, 0, NULL, 0),
	    CHANNEL_ESPACE);
	assert_int_equal(channel_encode(CH_HELLO, 0, "{}", 2, buf,
	    sizeof(buf)), sizeof(buf));
}

static void
test_boundary_sizes(void **state)
{
	size_t sizes[] = { 0, 1, CHANNEL_MAX_PAYLOAD - 1, CHANNEL_MAX_PAYLOAD };
	struct channel_frame f;
	uint8_t *buf, *payload;
	size_t i;
	ssize_t n;

	(void)state;
	buf = malloc(CHANNEL_MAX_FRAME + 1);
	payload = malloc(CHANNEL_MAX_PAYLOAD + 1);
	assert_non_null(buf);
	assert_non_null(payload);
	memset(payload, 'a', CHANNEL_MAX_PAYLOAD + 1);

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		n = channel_encode(CH_OPERATION, 0, payload, sizes[i], buf,
		    CHANNEL_MAX_FRAME);
		assert_int_equal(n, CHANNEL_HEADER_SIZE + sizes[i]);
		assert_int_equal(channel_decode(buf, (size_t)n, &f),
		    CHANNEL_OK);
		assert_int_equal(f.length, sizes[i]);
	}

	assert_int_equal(channel_encode(CH_OPERATION, 0, payload,
	    CHANNEL_MAX_PAYLOAD + 1, buf, CHANNEL_MAX_FRAME + 1),
	    CHANNEL_ETOOBIG);
	put_header(buf, CH_OPERATION, 0, CHANNEL_MAX_PAYLOAD + 1);
	assert_int_equal(channel_decode(buf, CHANNEL_MAX_FRAME + 1, &f),
	    CHANNEL_ETOOBIG);
	free(payload);
	free(buf);
}

static void
test_strerror(void **state)
{
	(void)state;
	assert_string_equal(channel_strerror(CHANNEL_ETRUNC),
	    "truncated frame");
	assert_string_equal(channel_strerror(CHANNEL_ELENGTH),
	    "length mismatch");
	assert_string_equal(channel_strerror(CHANNEL_ETOOBIG),
	    "payload too large");
	assert_string_equal(channel_strerror(CHANNEL_ETYPE),
	    "unknown frame type");
	assert_string_equal(channel_strerror(CHANNEL_EFLAGS), "unknown flags");
	assert_string_equal(channel_strerror(CHANNEL_ESPACE),
	    "buffer too small");
	assert_non_null(channel_strerror(CHANNEL_OK));
	assert_non_null(channel_strerror(-100));
}

static void
test_type_names(void **state)
{
	(void)state;
	assert_string_equal(channel_type_name(CH_HELLO), "HELLO");
	assert_string_equal(channel_type_name(CH_WORK_AVAILABLE),
	    "WORK_AVAILABLE");
	assert_string_equal(channel_type_name(CH_STATUS_REPLY),
	    "STATUS_REPLY");
	assert_string_equal(channel_type_name(0), "?");
	assert_string_equal(channel_type_name(CH_TYPE_MAX + 1), "?");
}

static void
test_directions(void **state)
{
	const uint16_t worker[] = { CH_HELLO, CH_READY, CH_HEARTBEAT,
	    CH_STATUS_REPLY };
	const uint16_t master[] = { CH_WORK_AVAILABLE, CH_OPERATION,
	    CH_GOODBYE, CH_STOP, CH_CANCEL, CH_LOG_REOPEN, CH_STATUS };
	size_t i;
	uint16_t t;

	(void)state;
	for (i = 0; i < sizeof(worker) / sizeof(worker[0]); i++) {
		assert_true(channel_type_from_worker(worker[i]));
		assert_false(channel_type_from_master(worker[i]));
	}
	for (i = 0; i < sizeof(master) / sizeof(master[0]); i++) {
		assert_true(channel_type_from_master(master[i]));
		assert_false(channel_type_from_worker(master[i]));
	}
	/* Every valid type has exactly one sender. */
	for (t = 1; t <= CH_TYPE_MAX; t++)
		assert_int_equal(channel_type_from_worker(t) +
		    channel_type_from_master(t), 1);
	assert_false(channel_type_from_worker(0));
	assert_false(channel_type_from_master(0));
	assert_false(channel_type_from_worker(CH_TYPE_MAX + 1));
	assert_false(channel_type_from_master(CH_TYPE_MAX + 1));
}

/* Socket tests: fds[0] plays the master, fds[1] the worker. */
struct sock_fixture {
	int fds[2];
	uint8_t *buf;
};

static int
sock_setup(void **state)
{
	struct sock_fixture *fx;

	if ((fx = calloc(1, sizeof(*fx))) == NULL)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fx->fds) == -1 ||
	    (fx->buf = malloc(TEST_RECV_SIZE)) == NULL) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int
sock_teardown(void **state)
{
	struct sock_fixture *fx = *state;

	if (fx->fds[0] != -1)
		close(fx->fds[0]);
	if (fx->fds[1] != -1)
		close(fx->fds[1]);
	free(fx->buf);
	free(fx);
	return 0;
}

static int
recv_one(struct sock_fixture *fx, struct channel_frame *f, int *err)
{
	return channel_recv(fx->fds[0], fx->buf, TEST_RECV_SIZE, f, err);
}

static void
test_sock_send_recv(void **state)
{
	struct sock_fixture *fx = *state;
	struct channel_frame f;
	int err = 0;

	assert_int_equal(channel_send(fx->fds[1], CH_HELLO, 0, TEST_PAYLOAD,
	    strlen(TEST_PAYLOAD)), 0);
	assert_int_equal(channel_send(fx->fds[1], CH_READY, 0, NULL, 0), 0);

	assert_int_equal(recv_one(fx, &f, &err), CHANNEL_RECV_FRAME);
	assert_int_equal(f.type, CH_HELLO);
	assert_int_equal(f.length, strlen(TEST_PAYLOAD));
	assert_memory_equal(f.payload, TEST_PAYLOAD, f.length);

	/* Record boundaries hold: the second frame arrives on its own. */
	assert_int_equal(recv_one(fx, &f, &err), CHANNEL_RECV_FRAME);
	assert_int_equal(f.type, CH_READY);
	assert_int_equal(f.length, 0);
}

static void
test_sock_max_frame(void **state)
{
	struct sock_fixture *fx = *state;
	struct channel_frame f;
	char *payload;
	int err = 0;

	payload = malloc(CHANNEL_MAX_PAYLOAD);
	assert_non_null(payload);
	memset(payload, 'z', CHANNEL_MAX_PAYLOAD);
	assert_int_equal(channel_send(fx->fds[1], CH_STATUS_REPLY, 0, payload,
	    CHANNEL_MAX_PAYLOAD), 0);
	assert_int_equal(recv_one(fx, &f, &err), CHANNEL_RECV_FRAME);
	assert_int_equal(f.length, CHANNEL_MAX_PAYLOAD);
	assert_memory_equal(f.payload, payload, CHANNEL_MAX_PAYLOAD);
	free(payload);
}

static void
test_sock_send_refused(void **state)
{
	struct sock_fixture *fx = *state;
	struct channel_frame f;
	int err = 0;

	errno = 0;
	assert_int_equal(channel_send(fx->fds[1], 0, 0, NULL, 0), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(channel_send(fx->fds[1], CH_STOP, 0x10, NULL, 0), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(channel_send(fx->fds[1], CH_HELLO, 0, "x",
	    CHANNEL_MAX_PAYLOAD + 1), -1);
	assert_int_equal(errno, EMSGSIZE);
	/* Nothing refused reached the socket. */
	errno = 0;
	assert_int_equal(recv_one(fx, &f, &err), CHANNEL_RECV_SYSERR);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void
test_sock_oversized_datagram(void **state)
{
	struct sock_fixture *fx = *state;
	struct channel_frame f;
	size_t big = TEST_RECV_SIZE + 1;
	uint8_t *raw;
	int err = 0;

	raw = calloc(1, big);
	assert_non_null(raw);
	put_header(raw, CH_HELLO, 0, (uint32_t)(big - CHANNEL_HEADER_SIZE));
	assert_int_equal(send(fx->fds[1], raw, big, 0), (ssize_t)big);
	assert_int_equal(recv_one(fx, &f, &err), CHANNEL_RECV_BAD);
	assert_int_equal(err, CHANNEL_ETOOBIG);

	/* One byte over the largest frame fits the buffer; decode refuses. */
	put_header(raw, CH_HELLO, 0, CHANNEL_MAX_PAYLOAD + 1);
	assert_int_equal(send(fx->fds[1], raw, CHANNEL_MAX_FRAME + 1, 0),
	    CHANNEL_MAX_FRAME + 1);
	err = 0;
	assert_int_equal(recv_one(fx, &f, &err), CHANNEL_RECV_BAD);
	assert_int_equal(err, CHANNEL_ETOOBIG);
	free(raw);
}

static void
test_sock_short_datagram(void **state)
{
	struct sock_fixture *fx = *state;
	struct channel_frame f;
	const uint8_t raw[3] = { 0, CH_HELLO, 0 };
	int err = 0;

	assert_int_equal(send(fx->fds[1], raw, sizeof(raw), 0), sizeof(raw));
	assert_int_equal(recv_one(fx, &f, &err), CHANNEL_RECV_BAD);
	assert_int_equal(err, CHANNEL_ETRUNC);
}

static void
test_sock_bad_frame_then_good(void **state)
{
	struct sock_fixture *fx = *state;
	struct channel_frame f;
	uint8_t raw[CHANNEL_HEADER_SIZE];
	int err = 0;

	put_header(raw, CH_TYPE_MAX + 1, 0, 0);
	assert_int_equal(send(fx->fds[1], raw, sizeof(raw), 0), sizeof(raw));
	assert_int_equal(channel_send(fx->fds[1], CH_HEARTBEAT, 0, "{}", 2), 0);
	assert_int_equal(recv_one(fx, &f, &err), CHANNEL_RECV_BAD);
	assert_int_equal(err, CHANNEL_ETYPE);
	assert_int_equal(recv_one(fx, &f, &err), CHANNEL_RECV_FRAME);
	assert_int_equal(f.type, CH_HEARTBEAT);
}

static void
test_sock_eof(void **state)
{
	struct sock_fixture *fx = *state;
	struct channel_frame f;
	int err = 0;

	assert_int_equal(channel_send(fx->fds[1], CH_READY, 0, NULL, 0), 0);
	close(fx->fds[1]);
	fx->fds[1] = -1;
	/* Frames queued before the close are still delivered, then EOF. */
	assert_int_equal(recv_one(fx, &f, &err), CHANNEL_RECV_FRAME);
	assert_int_equal(recv_one(fx, &f, &err), CHANNEL_RECV_EOF);
}

static void
test_sock_send_to_closed_peer(void **state)
{
	struct sock_fixture *fx = *state;

	close(fx->fds[0]);
	fx->fds[0] = -1;
	/* MSG_NOSIGNAL: EPIPE comes back instead of a fatal SIGPIPE. */
	errno = 0;
	assert_int_equal(channel_send(fx->fds[1], CH_READY, 0, NULL, 0), -1);
	assert_int_equal(errno, EPIPE);
}

static void
test_sock_empty(void **state)
{
	struct sock_fixture *fx = *state;
	struct channel_frame f;
	int err = 0;

	errno = 0;
	assert_int_equal(recv_one(fx, &f, &err), CHANNEL_RECV_SYSERR);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void
test_sock_small_buffer(void **state)
{
	struct sock_fixture *fx = *state;
	struct channel_frame f;
	int err = 0;

	errno = 0;
	assert_int_equal(channel_recv(fx->fds[0], fx->buf, CHANNEL_MAX_FRAME,
	    &f, &err), CHANNEL_RECV_SYSERR);
	assert_int_equal(errno, EINVAL);
}

#define SOCK_TEST(fn) \
	cmocka_unit_test_setup_teardown(fn, sock_setup, sock_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_every_type),
		cmocka_unit_test(test_wire_format_is_network_order),
		cmocka_unit_test(test_empty_payload),
		cmocka_unit_test(test_decode_truncated),
		cmocka_unit_test(test_decode_type),
		cmocka_unit_test(test_decode_flags),
		cmocka_unit_test(test_decode_length),
		cmocka_unit_test(test_decode_check_order),
		cmocka_unit_test(test_decode_leaves_frame_on_error),
		cmocka_unit_test(test_encode_errors),
		cmocka_unit_test(test_boundary_sizes),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_directions),
		SOCK_TEST(test_sock_send_recv),
		SOCK_TEST(test_sock_max_frame),
		SOCK_TEST(test_sock_send_refused),
		SOCK_TEST(test_sock_oversized_datagram),
		SOCK_TEST(test_sock_short_datagram),
		SOCK_TEST(test_sock_bad_frame_then_good),
		SOCK_TEST(test_sock_eof),
		SOCK_TEST(test_sock_send_to_closed_peer),
		SOCK_TEST(test_sock_empty),
		SOCK_TEST(test_sock_small_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
