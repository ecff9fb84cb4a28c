/*
 * channel: the master <-> worker frames over a SOCK_SEQPACKET socketpair.
 *
 * Owns the frame codec (pure functions, no I/O) and the two calls that move
 * one frame across a socket.  A frame is an 8-byte header (uint16 type,
 * uint16 flags, uint32 payload length, all in network byte order) followed by
 * at most CHANNEL_MAX_PAYLOAD bytes of JSON text (or nothing).  Every frame is
 * checked for a known type and an exact length before anyone looks inside.
 */
#ifndef EGRESSD_CHANNEL_H
#define EGRESSD_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CHANNEL_HEADER_SIZE 8
#define CHANNEL_MAX_PAYLOAD (64 * 1024)
#define CHANNEL_MAX_FRAME (CHANNEL_HEADER_SIZE + CHANNEL_MAX_PAYLOAD)

enum channel_type {
	CH_HELLO = 1,		/* w->m {"pid","instance_id","generation"} */
	CH_READY,		/* w->m {} */
	CH_HEARTBEAT,		/* w->m {"state","inflight","done","failed",...} */
	CH_WORK_AVAILABLE,	/* m->w (no payload) */
	CH_OPERATION,		/* m->w an operation object */
	CH_GOODBYE,		/* m->w {"reason"} */
	CH_STOP,		/* m->w {"deadline"}; flag CH_FLAG_FAST */
	CH_CANCEL,		/* m->w {"operation_id"} */
	CH_LOG_REOPEN,		/* m->w (no payload) */
	CH_STATUS,		/* m->w (no payload) */
	CH_STATUS_REPLY,	/* w->m live detail */
	CH_RELOAD,		/* w->m (no payload): an upgrade wants one */
	CH_UNREACHABLE,		/* w->m {"kind","error"}: first exchange failed */
	CH_TYPE_MAX = CH_UNREACHABLE
};

#define CH_FLAG_FAST 0x0001	/* STOP: cancel in-flight work */
#define CH_FLAGS_KNOWN CH_FLAG_FAST

/* Codec results: 0 is success, every error is negative. */
enum channel_error {
	CHANNEL_OK = 0,
	CHANNEL_ETRUNC = -1,	/* shorter than a header */
	CHANNEL_ELENGTH = -2,	/* header length differs from bytes present */
	CHANNEL_ETOOBIG = -3,	/* payload over CHANNEL_MAX_PAYLOAD */
	CHANNEL_ETYPE = -4,	/* unknown frame type */
	CHANNEL_EFLAGS = -5,	/* unknown flag bits */
	CHANNEL_ESPACE = -6,	/* output buffer too small (encode) */
};

struct channel_frame {
	uint16_t type;
	uint16_t flags;
	uint32_t length;
	const char *payload;	/* points into the decoded buffer; not NUL-terminated */
};

/* Encode a frame into out; returns its size or a negative channel_error. */
ssize_t channel_encode(uint16_t type, uint16_t flags, const void *payload,
    size_t len, uint8_t *out, size_t outlen);

/* Decode n bytes holding exactly one frame; returns CHANNEL_OK or an error. */
int channel_decode(const uint8_t *buf, size_t n, struct channel_frame *frame);

const char *channel_strerror(int code);
const char *channel_type_name(uint16_t type);	/* "HELLO", ..., "?" */

/* Which side may send a type: a master accepts only worker frames and back. */
int channel_type_from_worker(uint16_t type);
int channel_type_from_master(uint16_t type);

/*
 * Send one frame (payload may be NULL when len is 0).  Returns 0, or -1 with
 * errno set (EAGAIN when the socket buffer is full, EMSGSIZE when too big).
 */
int channel_send(int fd, uint16_t type, uint16_t flags, const char *payload,
    size_t len);

/*
 * Receive one frame into buf (at least CHANNEL_MAX_FRAME + 1 bytes, so a
 * datagram one byte too large shows as too large, not as a valid frame).
 * Returns CHANNEL_RECV_FRAME with *frame filled, CHANNEL_RECV_EOF,
 * CHANNEL_RECV_SYSERR on a socket error (errno set; EAGAIN when nothing is
 * waiting), or CHANNEL_RECV_BAD with *decode_error set to the channel_error
 * that rejected the datagram.
 */
#define CHANNEL_RECV_EOF 0
#define CHANNEL_RECV_FRAME 1
#define CHANNEL_RECV_SYSERR (-1)
#define CHANNEL_RECV_BAD (-2)	/* *decode_error says why */
int channel_recv(int fd, uint8_t *buf, size_t buflen,
    struct channel_frame *frame, int *decode_error);

#endif
