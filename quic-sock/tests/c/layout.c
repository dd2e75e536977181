/* Compile-time check that the header's structs have the kernel's sizes and offsets. */
#include <assert.h>
#include <stddef.h>
#include <netinet/quic.h>

static_assert(IPPROTO_QUIC == 261, "IPPROTO_QUIC");
static_assert(SOL_QUIC == 288, "SOL_QUIC");
static_assert(sizeof(struct quic_stream_info) == 16, "quic_stream_info");
static_assert(offsetof(struct quic_stream_info, stream_flags) == 8, "stream_flags");
static_assert(sizeof(struct quic_handshake_info) == 1, "quic_handshake_info");
static_assert(sizeof(struct quic_transport_param) == 56, "quic_transport_param");
static_assert(offsetof(struct quic_transport_param, max_datagram_frame_size) == 8, "tp 8");
static_assert(offsetof(struct quic_transport_param, max_idle_timeout) == 12, "tp 12");
static_assert(offsetof(struct quic_transport_param, max_streams_bidi) == 20, "tp 20");
static_assert(offsetof(struct quic_transport_param, max_data) == 24, "tp 24");
static_assert(offsetof(struct quic_transport_param, max_stream_data_uni) == 48, "tp 48");
static_assert(sizeof(struct quic_config) == 28, "quic_config");
static_assert(offsetof(struct quic_config, congestion_control_algo) == 16, "cfg 16");
static_assert(offsetof(struct quic_config, certificate_request) == 20, "cfg 20");
static_assert(offsetof(struct quic_config, keepalive_probe_interval) == 24, "cfg 24");
static_assert(sizeof(struct quic_crypto_secret) == 56, "quic_crypto_secret");
static_assert(offsetof(struct quic_crypto_secret, type) == 4, "secret type");
static_assert(offsetof(struct quic_crypto_secret, secret) == 8, "secret");
static_assert(sizeof(struct quic_connection_id_info) == 12, "quic_connection_id_info");
static_assert(offsetof(struct quic_connection_id_info, prior_to) == 8, "prior_to");
static_assert(sizeof(struct quic_event_option) == 2, "quic_event_option");
static_assert(sizeof(struct quic_stream_update) == 24, "quic_stream_update");
static_assert(offsetof(struct quic_stream_update, errcode) == 12, "su errcode");
static_assert(offsetof(struct quic_stream_update, finalsz) == 16, "su finalsz");
static_assert(sizeof(struct quic_stream_max_data) == 16, "quic_stream_max_data");
static_assert(sizeof(struct quic_connection_close) == 72, "quic_connection_close");
static_assert(offsetof(struct quic_connection_close, phrase) == 8, "phrase");
static_assert(sizeof(union quic_event) == 72, "union quic_event");
static_assert(CMSG_SPACE(sizeof(struct quic_stream_info)) == 32, "cmsg stream");
static_assert(CMSG_SPACE(sizeof(struct quic_handshake_info)) == 24, "cmsg hs");
static_assert((int)MSG_QUIC_STREAM_NEW == (int)MSG_SYN && (int)MSG_QUIC_STREAM_FIN == (int)MSG_FIN, "aliases");
static_assert((int)MSG_QUIC_STREAM_UNI == (int)MSG_CONFIRM && (int)MSG_QUIC_DATAGRAM == (int)MSG_RST, "aliases");
static_assert((int)MSG_QUIC_NOTIFICATION == (int)MSG_MORE && (int)MSG_QUIC_STREAM_SNDBLOCK == (int)MSG_ERRQUEUE, "aliases");
static_assert((int)MSG_QUIC_STREAM_DONTWAIT == (int)MSG_WAITFORONE, "aliases");
static_assert(QUIC_EVENT_MAX == 10 && QUIC_CRYPTO_MAX == 4, "enums");
static_assert(QUIC_STREAM_RECV_STATE_RESET_READ == 11, "states");

#include <stdio.h>
int main(void) { printf("OK\n"); return 0; }
