/*
 * pkg/http internals shared between the files of the module and with its
 * tests and fuzz target. Not part of the public contract.
 */
#ifndef D8_HTTP_INT_H
#define D8_HTTP_INT_H

#include "http.h"

/* Unparsed input held per connection while a request is being handled
 * before the socket stops being read (backpressure). */
#define HTTP__RBUF_BOUND (64u * 1024u)
/* Output queued on a stream beyond which http_stream_write gives up. */
#define HTTP__STREAM_MAX_QUEUED (8u * 1024u * 1024u)
/* Upper bound for draining a closing connection's input after the last
 * answer (lingering close), so that the peer reads the answer instead of a
 * reset. Also capped by idle_timeout_ms. */
#define HTTP__LINGER_MS 2000u

/*
 * Adopts a connected stream socket as a new connection of srv, exactly as
 * if the listener had accepted it (same limits, same read path). The fd is
 * owned by the server from then on, also on failure. Used by the fuzz
 * target with one end of a socketpair. Returns 0 or a D8_* error.
 */
int http__server_adopt(http_server_t *srv, uv_os_sock_t fd);

/* Writes "HTTP-date" for wall time t (seconds) into out; returns the length. */
size_t http__format_date(int64_t t, char out[32]);

#endif
