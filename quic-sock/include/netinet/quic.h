/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * quictun's libquic-compatible header. Programs written for the Linux in-kernel QUIC API
 * include this and either link -lquic_sock (its socket/bind/.../close interpose libc's for
 * IPPROTO_QUIC sockets) or run unmodified under LD_PRELOAD=libquic_sock.so. The quicsock_*
 * entry points are the same calls under names that never clash with libc; every one of them
 * passes non-QUIC file descriptors straight to libc.
 */
#ifndef _QUICTUN_NETINET_QUIC_H
#define _QUICTUN_NETINET_QUIC_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/quic.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libquic helpers; return 0 or a negative errno (a negative GnuTLS error code when TLS
 * itself fails). Certificates (cert_file / no pkey_file on the client): TLS runs in the
 * service. PSK (pkey_file = lines of "identity:hexkey", client without, server without
 * cert_file): GnuTLS (libgnutls.so.30, loaded at run time; -ENOPKG without it) runs TLS in
 * this process over the external-TLS socket calls, like libquic. */
int quic_client_handshake(int sockfd, const char *pkey_file, const char *hostname,
			  const char *alpns);
int quic_server_handshake(int sockfd, const char *pkey_file, const char *cert_file,
			  const char *alpns);

/* libquic's GnuTLS API. gnutls_session_t is declared here so this header needs no GnuTLS
 * headers; the identical typedef in <gnutls/gnutls.h> is skipped when that came first and is
 * a permitted redeclaration (C11, C++) when it comes after. */
#ifndef GNUTLS_GNUTLS_H
typedef struct gnutls_session_int *gnutls_session_t;
#endif

/* libquic's gnutls priority string for QUIC sessions */
#define QUIC_PRIORITY \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+PSK:+ECDHE-PSK:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:" \
	"+CHACHA20-POLY1305:+AES-128-CCM:-GROUP-ALL:+GROUP-SECP256R1:" \
	"+GROUP-X25519:+GROUP-SECP384R1:+GROUP-SECP521R1:" \
	"%DISABLE_TLS13_COMPAT_MODE"

enum quic_handshake_step_op {
	QUIC_HANDSHAKE_STEP_OP_SENDMSG = 1,
	QUIC_HANDSHAKE_STEP_OP_RECVMSG,
};

struct quic_handshake_step_sendmsg {
	const struct msghdr *msg;
	int flags;
	ssize_t retval;
};

struct quic_handshake_step_recvmsg {
	struct msghdr *msg;
	int flags;
	ssize_t retval;
};

struct quic_handshake_step {
	enum quic_handshake_step_op op;
	union {
		struct quic_handshake_step_sendmsg s_sendmsg;
		struct quic_handshake_step_recvmsg s_recvmsg;
	};
};

/* Drive a session the application configured (priority, credentials, ALPN,
 * gnutls_transport_set_int(session, sockfd)): blocking, 1 s polls, -ETIMEDOUT after 30 s */
int quic_handshake(gnutls_session_t session);
/* The same as steps: perform *pstep's sendmsg/recvmsg on the socket, store its result (or
 * -errno; retry EAGAIN/EINTR yourself) in retval, call quic_handshake_step until *pstep is
 * NULL; always finish with quic_handshake_deinit */
int quic_handshake_init(gnutls_session_t session, struct quic_handshake_step **pstep);
int quic_handshake_step(gnutls_session_t session, struct quic_handshake_step **pstep);
void quic_handshake_deinit(gnutls_session_t session);

int quic_session_get_data(gnutls_session_t session, void *data, size_t *size);
int quic_session_set_data(gnutls_session_t session, const void *data, size_t size);
int quic_session_get_alpn(gnutls_session_t session, void *data, size_t *size);
int quic_session_set_alpn(gnutls_session_t session, const void *data, size_t size);
ssize_t quic_sendmsg(int sockfd, const void *msg, size_t len, int64_t sid, uint32_t flags);
ssize_t quic_recvmsg(int sockfd, void *msg, size_t len, int64_t *sid, uint32_t *flags);

/* The socket calls under non-clashing names (same semantics as the libc ones) */
int quicsock_socket(int domain, int type, int protocol);
int quicsock_bind(int fd, const struct sockaddr *addr, socklen_t len);
int quicsock_listen(int fd, int backlog);
int quicsock_accept(int fd, struct sockaddr *addr, socklen_t *len);
int quicsock_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int quicsock_connect(int fd, const struct sockaddr *addr, socklen_t len);
ssize_t quicsock_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t quicsock_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t quicsock_send(int fd, const void *buf, size_t len, int flags);
ssize_t quicsock_recv(int fd, void *buf, size_t len, int flags);
int quicsock_setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen);
int quicsock_getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen);
int quicsock_getsockname(int fd, struct sockaddr *addr, socklen_t *len);
int quicsock_getpeername(int fd, struct sockaddr *addr, socklen_t *len);
int quicsock_shutdown(int fd, int how);
int quicsock_close(int fd);
/* 1 if fd is a QUIC socket created through this library */
int quicsock_is_quic(int fd);

#ifdef __cplusplus
}
#endif

#endif /* _QUICTUN_NETINET_QUIC_H */
