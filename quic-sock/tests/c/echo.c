/*
 * A program written only against the kernel QUIC socket API (plus libquic's helpers unless
 * KERNEL_API_ONLY). Run against the fake service of tests/c_api.rs, whose "connection"
 * echoes stream data and datagrams back and reports a STREAM_UPDATE event on FIN.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <netinet/quic.h>

#include "test_common.h"

int main(void)
{
	struct quic_transport_param tp;
	struct quic_config cfg;
	struct quic_event_option ev = { QUIC_EVENT_STREAM_UPDATE, 1 };
	struct quic_stream_info si;
	struct quic_stream_update *up;
	struct sockaddr_in sa, peer;
	struct pollfd p;
	char buf[256], alpn[64];
	socklen_t len;
	ssize_t n;
	int fd, mflags, u;

	CHECK(socket(AF_UNIX, SOCK_DGRAM, IPPROTO_QUIC) == -1 && errno == EAFNOSUPPORT);
	fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	CHECK(fd >= 0);

	/* options before connect: defaults, limits, errno choices */
	len = sizeof(buf);
	CHECK(getsockopt(fd, SOL_QUIC, 99, buf, &len) == -1 && errno == ENOPROTOOPT);
	memset(&tp, 0, sizeof(tp));
	len = sizeof(tp);
	CHECK(getsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_TRANSPORT_PARAM, &tp, &len) == 0);
	CHECK(len == 56 && tp.max_streams_bidi == 100 && tp.max_data == 65535 * 32);
	CHECK(tp.max_idle_timeout == 30000000 && tp.active_connection_id_limit == 7);
	memset(&cfg, 0, sizeof(cfg));
	cfg.initial_smoothed_rtt = 10;
	CHECK(setsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_CONFIG, &cfg, sizeof(cfg)) == -1 &&
	      errno == EINVAL);
	len = sizeof(cfg);
	CHECK(getsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_CONFIG, &cfg, &len) == 0);
	CHECK(cfg.version == QUIC_VERSION_V1 && cfg.initial_smoothed_rtt == 333000);
	memset(&tp, 0, sizeof(tp));
	tp.max_datagram_frame_size = 1400;
	CHECK(setsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_TRANSPORT_PARAM, &tp, sizeof(tp)) == 0);
	CHECK(setsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_EVENT, &ev, sizeof(ev)) == 0);
	ev.on = 0;
	len = sizeof(ev);
	CHECK(getsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_EVENT, &ev, &len) == 0 && ev.on == 1);
	CHECK(setsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_KEY_UPDATE, NULL, 0) == -1 && errno == EPIPE);
	CHECK(setsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_ALPN, "sample", 6) == 0);
	memset(alpn, 0, sizeof(alpn));
	len = sizeof(alpn);
	CHECK(getsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_ALPN, alpn, &len) == 0);
	CHECK(len == 6 && !strcmp(alpn, "sample"));

	loopback_addr(&sa, 4433);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	len = sizeof(buf);
	/* a client's TOKEN get succeeds: libquic's role detection */
	CHECK(getsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_TOKEN, buf, &len) == 0 && len == 0);
#ifndef KERNEL_API_ONLY
	CHECK(quic_client_handshake(fd, NULL, "localhost", "sample") == 0);
#endif

	/* nothing queued: not readable, non-blocking recv says EAGAIN */
	p.fd = fd;
	p.events = POLLIN;
	CHECK(poll(&p, 1, 0) == 0);
	CHECK(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == -1 && errno == EAGAIN);

	/* stream data with stream info; the echo comes back after the event */
	CHECK(send_stream_flags(fd, -1, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN, "hello", 5, 0) == 5);
	CHECK(poll(&p, 1, 2000) == 1 && (p.revents & POLLIN));
	n = recv_any_flags(fd, buf, sizeof(buf), &si, &mflags, 0);
	CHECK(n == 1 + (ssize_t)sizeof(struct quic_stream_update));
	CHECK((mflags & MSG_QUIC_NOTIFICATION) && (mflags & MSG_EOR));
	CHECK(buf[0] == QUIC_EVENT_STREAM_UPDATE);
	up = (struct quic_stream_update *)(buf + 1);
	CHECK(up->id == 0 && up->state == QUIC_STREAM_SEND_STATE_RECVD && up->finalsz == 5);
	CHECK(poll(&p, 1, 0) == 1);
	n = recv_any_flags(fd, buf, sizeof(buf), &si, &mflags, 0);
	CHECK(n == 5 && !memcmp(buf, "hello", 5));
	CHECK(si.stream_id == 0 && (si.stream_flags & MSG_QUIC_STREAM_FIN));
	CHECK(poll(&p, 1, 0) == 0);

	/* datagram, read in two pieces: MSG_EOR only on the last */
	CHECK(send(fd, "dgram", 5, MSG_QUIC_DATAGRAM) == 5);
	n = recv_any_flags(fd, buf, 3, &si, &mflags, 0);
	CHECK(n == 3 && (mflags & MSG_QUIC_DATAGRAM) && !(mflags & MSG_EOR));
	n = recv_any_flags(fd, buf, sizeof(buf), &si, &mflags, 0);
	CHECK(n == 2 && (mflags & MSG_QUIC_DATAGRAM) && (mflags & MSG_EOR) && buf[0] == 'a');
	CHECK(send(fd, "", 0, MSG_QUIC_DATAGRAM) == -1 && errno == EMSGSIZE);
	CHECK(send(fd, "x", 1, MSG_OOB) == -1 && errno == EINVAL);

	/* blocking recv: SO_RCVTIMEO expiry, then a wake-up by the service's doorbell */
	{
		struct timeval tv = { 0, 50000 };
		ssize_t r;

		CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
		CHECK(recv(fd, buf, sizeof(buf), 0) == -1 && errno == EAGAIN);
		tv.tv_usec = 0;
		CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
		CHECK(send(fd, "delay:z", 7, MSG_QUIC_DATAGRAM) == 7);
		CHECK(poll(&p, 1, 0) == 0);
		r = recv_any_flags(fd, buf, sizeof(buf), &si, &mflags, 0);
		CHECK(r == 7 && (mflags & MSG_QUIC_DATAGRAM) && buf[6] == 'z');
	}

	/* a write above the 64 KiB message size goes in pieces; FIN only on the last */
	{
		static char big[100000];
		size_t got = 0;
		int fins = 0;

		memset(big, 'b', sizeof(big));
		CHECK(send_stream_flags(fd, -1, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN, big,
				  sizeof(big), 0) == (ssize_t)sizeof(big));
		n = recv_any_flags(fd, buf, sizeof(buf), &si, &mflags, 0); /* the STREAM_UPDATE */
		CHECK(n > 0 && (mflags & MSG_QUIC_NOTIFICATION));
		while (got < sizeof(big)) {
			static char rb[70000];

			n = recv_any_flags(fd, rb, sizeof(rb), &si, &mflags, MSG_DONTWAIT);
			CHECK(n > 0 && si.stream_id == 4);
			if (si.stream_flags & MSG_QUIC_STREAM_FIN)
				fins++;
			got += n;
		}
		CHECK(got == sizeof(big) && fins == 1 && (si.stream_flags & MSG_QUIC_STREAM_FIN));
	}

	/* flow-control blocked sends: ENOSPC with a stream cmsg, EAGAIN without; a blocking
	 * socket waits for the service's POLLOUT doorbell */
	CHECK(send_stream_flags(fd, 20, MSG_QUIC_STREAM_NEW, "block:1", 7, MSG_DONTWAIT) == -1 &&
	      errno == ENOSPC);
	CHECK(send(fd, "block:2", 7, MSG_DONTWAIT) == -1 && errno == EAGAIN);
	usleep(150000);
	CHECK(poll(&p, 1, 0) == 0); /* no POLLOUT doorbell for writers that did not wait */
	CHECK(send_stream_flags(fd, 20, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN, "block:3", 7, 0) == 7);
	n = recv_any_flags(fd, buf, sizeof(buf), &si, &mflags, 0); /* STREAM_UPDATE */
	CHECK(n > 0 && (mflags & MSG_QUIC_NOTIFICATION));
	n = recv_any_flags(fd, buf, sizeof(buf), &si, &mflags, 0);
	CHECK(n == 7 && si.stream_id == 20 && !memcmp(buf, "block:3", 7));

	/* STREAM_OPEN: next unidirectional stream */
	si.stream_id = -1;
	si.stream_flags = MSG_QUIC_STREAM_UNI;
	len = sizeof(si);
	CHECK(getsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_STREAM_OPEN, &si, &len) == 0);
	CHECK(len == sizeof(si) && si.stream_id == 2);

	/* FIN without room for the cmsg: MSG_CTRUNC and FIN in msg_flags */
	CHECK(send_stream_flags(fd, 12, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN, "abc", 3, 0) == 3);
	n = recv_any_flags(fd, buf, sizeof(buf), &si, &mflags, 0); /* the event */
	CHECK(n > 0 && (mflags & MSG_QUIC_NOTIFICATION));
	{
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr m = { 0 };

		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		n = recvmsg(fd, &m, 0);
		CHECK(n == 3 && (m.msg_flags & MSG_CTRUNC) && (m.msg_flags & MSG_QUIC_STREAM_FIN));
	}

#ifndef KERNEL_API_ONLY
	{
		int64_t sid = -1;
		uint32_t fl = 0;

		CHECK(quic_sendmsg(fd, "xyz", 3, 16, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN) == 3);
		n = quic_recvmsg(fd, buf, sizeof(buf), &sid, &fl);
		CHECK(n > 0 && (fl & MSG_QUIC_NOTIFICATION));
		fl = 0;
		n = quic_recvmsg(fd, buf, sizeof(buf), &sid, &fl);
		CHECK(n == 3 && sid == 16 && (fl & MSG_QUIC_STREAM_FIN) && !memcmp(buf, "xyz", 3));
	}
	CHECK(setsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_KEY_UPDATE, NULL, 0) == 0);
#endif

	len = sizeof(peer);
	CHECK(getpeername(fd, (struct sockaddr *)&peer, &len) == 0);
	CHECK(len == sizeof(peer) && peer.sin_port == htons(4433));
	len = sizeof(peer);
	CHECK(getsockname(fd, (struct sockaddr *)&peer, &len) == 0 && peer.sin_family == AF_INET);

	/* a duplicate is the same QUIC socket; closing it leaves the original open */
	{
		int d = dup(fd), d2 = fcntl(fd, F_DUPFD_CLOEXEC, 100);

		CHECK(d >= 0 && d2 >= 100);
		len = sizeof(ev);
		ev.type = QUIC_EVENT_STREAM_UPDATE;
		CHECK(getsockopt(d, SOL_QUIC, QUIC_SOCKOPT_EVENT, &ev, &len) == 0 && ev.on == 1);
		CHECK(getsockopt(d2, SOL_QUIC, QUIC_SOCKOPT_EVENT, &ev, &len) == 0 && ev.on == 1);
		CHECK(close(d) == 0 && close(d2) == 0);
		len = sizeof(ev);
		CHECK(getsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_EVENT, &ev, &len) == 0);
	}

	CHECK(shutdown(fd, SHUT_RDWR) == 0);
	CHECK(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == -1 && errno == ENOTCONN);
	CHECK(close(fd) == 0);

	/* other sockets are untouched */
	u = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(u >= 0);
	len = sizeof(buf);
	CHECK(getsockopt(u, SOL_QUIC, QUIC_SOCKOPT_EVENT, buf, &len) == -1);
	CHECK(close(u) == 0);
	printf("OK\n");
	return 0;
}
