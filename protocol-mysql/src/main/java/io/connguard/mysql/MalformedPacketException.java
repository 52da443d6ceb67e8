package io.connguard.mysql;

/** A handshake packet could not be decoded; the session reports it as a protocol violation. */
final class MalformedPacketException extends RuntimeException {

    MalformedPacketException(String message) {
        super(message, null, false, false);
    }
}
