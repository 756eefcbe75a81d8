/*
 * sio_packet: the Socket.IO v5 packet format (inside Engine.IO v4 "message" packets), parsed and
 * written without I/O so it can be unit-tested and fuzzed.
 *
 * Text form: <type>[<attachments>-][/<namespace>,][<ack id>][<JSON payload>], type 0 CONNECT,
 * 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR, 5 BINARY_EVENT, 6 BINARY_ACK.
 */
#ifndef TENANTD_REALTIME_SIO_PACKET_H
#define TENANTD_REALTIME_SIO_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define SIOP_MAX_NAMESPACE 128

typedef enum {
    SIOP_CONNECT = 0,
    SIOP_DISCONNECT = 1,
    SIOP_EVENT = 2,
    SIOP_ACK = 3,
    SIOP_CONNECT_ERROR = 4,
    SIOP_BINARY_EVENT = 5,
    SIOP_BINARY_ACK = 6
} siop_type_t;

typedef struct {
    siop_type_t type;
    int attachments;               /* binary packets only */
    char nsp[SIOP_MAX_NAMESPACE + 1]; /* "/" when absent */
    bool has_ack;
    uint64_t ack_id;
    json_t *data;                  /* payload or NULL; owned: free with siop_free */
} siop_packet_t;

/* Parses len bytes; 0, or -1 on any malformation (the connection is then closed). */
int siop_parse(const char *s, size_t len, siop_packet_t *out);

/* Releases the packet's payload. */
void siop_free(siop_packet_t *p);

/* Writes "4" + a Socket.IO packet (Engine.IO message) with payload text (may be NULL) into a malloc'd string. */
char *siop_encode(siop_type_t type, const char *nsp, bool has_ack, uint64_t ack_id, const char *payload, size_t *len);

/* Writes an EVENT packet ["event", data] (data is JSON text) as an Engine.IO message; malloc'd. */
char *siop_encode_event(const char *event, size_t event_len, const char *data, size_t data_len, size_t *len);

/* Like siop_encode_event, with the Socket.IO recovery offset (seq as a string) appended as the last argument when seq > 0. */
char *siop_encode_event_offset(const char *event, size_t event_len, const char *data, size_t data_len, uint64_t seq, size_t *len);

#endif
