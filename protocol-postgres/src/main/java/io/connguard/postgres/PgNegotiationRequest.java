package io.connguard.postgres;

/**
 * The client asks for an encrypted connection: SSLRequest, GSSENCRequest (both answered with a single
 * byte), or a TLS ClientHello sent directly (PostgreSQL 17's {@code sslnegotiation=direct}).
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL">SSL session encryption</a>
 */
enum PgNegotiationRequest implements PgInitialPacket {
    SSL_REQUEST,
    GSSENC_REQUEST,
    DIRECT_TLS
}
