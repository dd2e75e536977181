/* Helpers shared by the C test programs (echo.c, sockd_*.c): the failure macro and the
 * kernel-API message plumbing every program needs. Static inline so that a program using
 * only some of them still builds with -Wall -Werror. Include after <netinet/quic.h> and the
 * libc headers (stdio, stdlib, string, errno, sys/socket). */
#ifndef QUICSOCK_TEST_COMMON_H
#define QUICSOCK_TEST_COMMON_H

/* Which side of the fork failed: each program sets it when it becomes client or server */
static const char *role = "main";

#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c)) {                                                              \
			fprintf(stderr, "FAIL[%s] %s:%d: %s (errno %d %s)\n", role,      \
				__FILE__, __LINE__, #c, errno, strerror(errno));         \
			exit(1);                                                         \
		}                                                                        \
	} while (0)

/* sendmsg with one SOL_QUIC cmsg of `type` carrying `info` (kernel API only: no quic_sendmsg) */
static inline ssize_t send_with_cmsg(int fd, int type, const void *info, size_t info_len,
				     const void *data, size_t len, int flags)
{
	char ctrl[CMSG_SPACE(sizeof(struct quic_stream_info)) +
		  CMSG_SPACE(sizeof(struct quic_handshake_info))] = { 0 };
	struct iovec iov = { (void *)data, len };
	struct msghdr m = { 0 };
	struct cmsghdr *c;

	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctrl;
	m.msg_controllen = CMSG_SPACE(info_len);
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_QUIC;
	c->cmsg_type = type;
	c->cmsg_len = CMSG_LEN(info_len);
	memcpy(CMSG_DATA(c), info, info_len);
	return sendmsg(fd, &m, flags);
}

/* sendmsg on stream `id` (-1: a new one, with MSG_QUIC_STREAM_NEW in sflags) */
static inline ssize_t send_stream_flags(int fd, int64_t id, uint32_t sflags, const void *data,
					size_t len, int flags)
{
	struct quic_stream_info si = { .stream_id = id, .stream_flags = sflags };

	return send_with_cmsg(fd, QUIC_STREAM_INFO, &si, sizeof(si), data, len, flags);
}

static inline ssize_t send_stream(int fd, int64_t id, uint32_t sflags, const void *data,
				  size_t len)
{
	return send_stream_flags(fd, id, sflags, data, len, 0);
}

/* One recvmsg's header and control buffer (room for one SOL_QUIC info cmsg); after
 * recv_with_cmsg, walk m's cmsgs with CMSG_FIRSTHDR/CMSG_NXTHDR */
struct quic_recv {
	struct msghdr m;
	struct iovec iov;
	char ctrl[CMSG_SPACE(sizeof(struct quic_stream_info))];
};

static inline ssize_t recv_with_cmsg(int fd, void *buf, size_t len, int flags, struct quic_recv *r)
{
	memset(&r->m, 0, sizeof(r->m));
	r->iov.iov_base = buf;
	r->iov.iov_len = len;
	r->m.msg_iov = &r->iov;
	r->m.msg_iovlen = 1;
	r->m.msg_control = r->ctrl;
	r->m.msg_controllen = sizeof(r->ctrl);
	return recvmsg(fd, &r->m, flags);
}

/* recvmsg; fills *si from the QUIC_STREAM_INFO cmsg (id -1 if none) and *mflags. With
 * `strict`, any other cmsg fails the program (where none can legitimately arrive). */
static inline ssize_t recv_msg_info(int fd, void *buf, size_t len, struct quic_stream_info *si,
				    int *mflags, int flags, int strict)
{
	struct quic_recv r;
	struct cmsghdr *c;
	ssize_t n;

	n = recv_with_cmsg(fd, buf, len, flags, &r);
	si->stream_id = -1;
	si->stream_flags = 0;
	if (n < 0)
		return n;
	*mflags = r.m.msg_flags;
	for (c = CMSG_FIRSTHDR(&r.m); c; c = CMSG_NXTHDR(&r.m, c)) {
		int info = c->cmsg_level == SOL_QUIC && c->cmsg_type == QUIC_STREAM_INFO;

		if (strict)
			CHECK(info);
		if (info)
			memcpy(si, CMSG_DATA(c), sizeof(*si));
	}
	return n;
}

static inline ssize_t recv_any_flags(int fd, void *buf, size_t len, struct quic_stream_info *si,
				     int *mflags, int flags)
{
	return recv_msg_info(fd, buf, len, si, mflags, flags, 0);
}

static inline ssize_t recv_any(int fd, void *buf, size_t len, struct quic_stream_info *si,
			       int *mflags)
{
	return recv_msg_info(fd, buf, len, si, mflags, 0, 0);
}

/* datagrams need max_datagram_frame_size on both sides (the kernel's default is 0) */
static inline void enable_datagrams(int fd)
{
	struct quic_transport_param tp;

	memset(&tp, 0, sizeof(tp)); /* zero fields keep their defaults */
	tp.max_datagram_frame_size = 1400;
	CHECK(setsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_TRANSPORT_PARAM, &tp, sizeof(tp)) == 0);
}

/* `sa` := 127.0.0.1:port */
static inline void loopback_addr(struct sockaddr_in *sa, uint16_t port)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

#endif
