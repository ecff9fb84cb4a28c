/*
 * channel: the master <-> worker frame codec and the two calls that move one
 * frame over a SOCK_SEQPACKET socketpair.
 *
 * The codec is pure: it never touches a socket, so unit tests and fuzzers
 * drive it directly.  Every decoded frame is checked in a fixed order, so a
 * frame with several faults always reports the same one:
 *
 *	1. CHANNEL_ETRUNC	fewer bytes than a header
 *	2. CHANNEL_ETYPE	type 0 or above CH_TYPE_MAX
 *	3. CHANNEL_EFLAGS	flag bits outside CH_FLAGS_KNOWN
 *	4. CHANNEL_ETOOBIG	header length above CHANNEL_MAX_PAYLOAD
 *	5. CHANNEL_ELENGTH	header length differs from the bytes present
 *
 * channel_encode() refuses what channel_decode() would refuse, so a frame we
 * send is always one the peer accepts.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <string.h>

#include "core/channel.h"

/* Header layout: offsets of the three big-endian fields. */
#define CHANNEL_OFF_TYPE	0
#define CHANNEL_OFF_FLAGS	2
#define CHANNEL_OFF_LENGTH	4

/* The peer's view of a frame: which side is allowed to send it. */
enum channel_dir {
	CHANNEL_DIR_NONE = 0,
	CHANNEL_DIR_WORKER,	/* worker -> master */
	CHANNEL_DIR_MASTER,	/* master -> worker */
};

struct channel_type_info {
	const char *name;
	enum channel_dir dir;
};

/* Indexed by enum channel_type; slot 0 is never a valid type. */
static const struct channel_type_info channel_types[CH_TYPE_MAX + 1] = {
	[CH_HELLO] =		{ "HELLO",		CHANNEL_DIR_WORKER },
	[CH_READY] =		{ "READY",		CHANNEL_DIR_WORKER },
	[CH_HEARTBEAT] =	{ "HEARTBEAT",		CHANNEL_DIR_WORKER },
	[CH_WORK_AVAILABLE] =	{ "WORK_AVAILABLE",	CHANNEL_DIR_MASTER },
	[CH_OPERATION] =	{ "OPERATION",		CHANNEL_DIR_MASTER },
	[CH_GOODBYE] =		{ "GOODBYE",		CHANNEL_DIR_MASTER },
	[CH_STOP] =		{ "STOP",		CHANNEL_DIR_MASTER },
	[CH_CANCEL] =		{ "CANCEL",		CHANNEL_DIR_MASTER },
	[CH_LOG_REOPEN] =	{ "LOG_REOPEN",		CHANNEL_DIR_MASTER },
	[CH_STATUS] =		{ "STATUS",		CHANNEL_DIR_MASTER },
	[CH_STATUS_REPLY] =	{ "STATUS_REPLY",	CHANNEL_DIR_WORKER },
	[CH_RELOAD] =		{ "RELOAD",		CHANNEL_DIR_WORKER },
	[CH_UNREACHABLE] =	{ "UNREACHABLE",	CHANNEL_DIR_WORKER },
};

static int
channel_type_valid(uint16_t type)
{
	return type != 0 && type <= CH_TYPE_MAX;
}

static int
channel_flags_valid(uint16_t flags)
{
	return (flags & ~CH_FLAGS_KNOWN) == 0;
}

/* Explicit byte shuffling keeps the codec free of host byte order. */
static void
channel_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
channel_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t
channel_get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
channel_get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/*
 * A NULL payload with a non-zero length claims bytes that are not there,
 * which is the same fault as a header length that lies: CHANNEL_ELENGTH.
 */
ssize_t
channel_encode(uint16_t type, uint16_t flags, const void *payload,
    size_t len, uint8_t *out, size_t outlen)
{
	if (!channel_type_valid(type))
		return CHANNEL_ETYPE;
	if (!channel_flags_valid(flags))
		return CHANNEL_EFLAGS;
	if (len > CHANNEL_MAX_PAYLOAD)
		return CHANNEL_ETOOBIG;
	if (len > 0 && payload == NULL)
		return CHANNEL_ELENGTH;
	if (out == NULL || outlen < CHANNEL_HEADER_SIZE + len)
		return CHANNEL_ESPACE;

	channel_put16(out + CHANNEL_OFF_TYPE, type);
	channel_put16(out + CHANNEL_OFF_FLAGS, flags);
	channel_put32(out + CHANNEL_OFF_LENGTH, (uint32_t)len);
	if (len > 0)
		memcpy(out + CHANNEL_HEADER_SIZE, payload, len);
	return (ssize_t)(CHANNEL_HEADER_SIZE + len);
}

int
channel_decode(const uint8_t *buf, size_t n, struct channel_frame *frame)
{
	uint16_t type, flags;
	uint32_t length;

	if (buf == NULL || n < CHANNEL_HEADER_SIZE)
		return CHANNEL_ETRUNC;
	type = channel_get16(buf + CHANNEL_OFF_TYPE);
	flags = channel_get16(buf + CHANNEL_OFF_FLAGS);
	length = channel_get32(buf + CHANNEL_OFF_LENGTH);

	if (!channel_type_valid(type))
		return CHANNEL_ETYPE;
	if (!channel_flags_valid(flags))
		return CHANNEL_EFLAGS;
	if (length > CHANNEL_MAX_PAYLOAD)
		return CHANNEL_ETOOBIG;
	if (length != n - CHANNEL_HEADER_SIZE)
		return CHANNEL_ELENGTH;

	/* The caller's frame is only written once the whole frame is valid. */
	frame->type = type;
	frame->flags = flags;
	frame->length = length;
	frame->payload = (const char *)(buf + CHANNEL_HEADER_SIZE);
	return CHANNEL_OK;
}

const char *
channel_strerror(int code)
{
	switch (code) {
	case CHANNEL_OK:
		return "success";
	case CHANNEL_ETRUNC:
		return "truncated frame";
	case CHANNEL_ELENGTH:
		return "length mismatch";
	case CHANNEL_ETOOBIG:
		return "payload too large";
	case CHANNEL_ETYPE:
		return "unknown frame type";
	case CHANNEL_EFLAGS:
		return "unknown flags";
	case CHANNEL_ESPACE:
		return "buffer too small";
	default:
		return "unknown error";
	}
}

const char *
channel_type_name(uint16_t type)
{
	if (!channel_type_valid(type))
		return "?";
	return channel_types[type].name;
}

int
channel_type_from_worker(uint16_t type)
{
	return channel_type_valid(type) &&
	    channel_types[type].dir == CHANNEL_DIR_WORKER;
}

int
channel_type_from_master(uint16_t type)
{
	return channel_type_valid(type) &&
	    channel_types[type].dir == CHANNEL_DIR_MASTER;
}

/* Map a refused encode onto the errno the caller of a send expects. */
static int
channel_encode_errno(ssize_t code)
{
	return code == CHANNEL_ETOOBIG ? EMSGSIZE : EINVAL;
}

/*
 * The frame is assembled in one local buffer so it leaves in a single
 * send(): on SOCK_SEQPACKET one call is one record, and the peer sees the
 * frame whole or not at all.  MSG_NOSIGNAL because a dead peer must give
 * EPIPE here, not kill the sender; MSG_DONTWAIT because neither side may
 * block on the other.
 */
int
channel_send(int fd, uint16_t type, uint16_t flags, const char *payload,
    size_t len)
{
	uint8_t frame[CHANNEL_MAX_FRAME];
	ssize_t n, w;

	n = channel_encode(type, flags, payload, len, frame, sizeof(frame));
	if (n < 0) {
		errno = channel_encode_errno(n);
		return -1;
	}
	do {
		w = send(fd, frame, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (w == -1 && errno == EINTR);
	if (w == -1)
		return -1;
	/* A record socket never splits a record; a short write is a fault. */
	if (w != n) {
		errno = EIO;
		return -1;
	}
	return 0;
}

static int
channel_recv_bad(int *decode_error, int code)
{
	if (decode_error != NULL)
		*decode_error = code;
	return CHANNEL_RECV_BAD;
}

/*
 * A zero-length read is EOF.  A peer could also send an empty record, which
 * reads the same; no valid frame is empty, and the answer to a bad frame is
 * to close the channel anyway, so the two need not be told apart.
 */
int
channel_recv(int fd, uint8_t *buf, size_t buflen,
    struct channel_frame *frame, int *decode_error)
{
	struct iovec iov;
	struct msghdr msg;
	ssize_t r;
	int code;

	/* A smaller buffer would make a valid maximal frame look too big. */
	if (buf == NULL || buflen < CHANNEL_MAX_FRAME + 1) {
		errno = EINVAL;
		return CHANNEL_RECV_SYSERR;
	}
	iov.iov_base = buf;
	iov.iov_len = buflen;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;

	do {
		r = recvmsg(fd, &msg, MSG_DONTWAIT);
	} while (r == -1 && errno == EINTR);
	if (r == -1)
		return CHANNEL_RECV_SYSERR;
	/* The kernel dropped the tail of a record larger than any frame. */
	if (msg.msg_flags & MSG_TRUNC)
		return channel_recv_bad(decode_error, CHANNEL_ETOOBIG);
	if (r == 0)
		return CHANNEL_RECV_EOF;

	code = channel_decode(buf, (size_t)r, frame);
	if (code != CHANNEL_OK)
		return channel_recv_bad(decode_error, code);
	return CHANNEL_RECV_FRAME;
}
