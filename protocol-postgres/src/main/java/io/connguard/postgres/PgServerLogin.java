package io.connguard.postgres;

import com.ongres.scram.client.ScramClient;
import com.ongres.scram.common.StringPreparation;
import com.ongres.scram.common.exception.ScramException;
import io.connguard.core.auth.Randomness;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Logs connguard itself in to a PostgreSQL server, for a pooled server connection: sends a StartupMessage
 * with the parameters given, answers trust, cleartext, md5 and SCRAM-SHA-256 (computed by
 * {@code com.ongres.scram}, the library pgjdbc uses), and collects what the server says until its first
 * ReadyForQuery: the parameters it reports, the backend key, or its ErrorResponse.
 *
 * <p>A pure state machine on bytes: the caller writes {@link #startupMessage()} and what {@code toServer}
 * receives, and feeds every byte the server sends to {@link #feed}. When the server asks for a password
 * the login was not given, it pauses at {@link Status#PASSWORD_NEEDED} until {@link #password} is called
 * (passthrough: connguard asks the client only when the database asks). Login messages are small, so
 * they are collected whole here, unlike the relay's streamed messages. Single-threaded, like its owner.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP">Start-up</a>,
 *     <a href="https://www.postgresql.org/docs/current/sasl-authentication.html">SASL authentication</a>
 */
final class PgServerLogin {

    /** Where the login is. */
    enum Status { RUNNING, PASSWORD_NEEDED, READY, FAILED }

    /** Which password exchange the server asked for. */
    enum Method { NONE, CLEARTEXT, MD5, SCRAM_SHA_256 }

    static final int PROTOCOL_3_0 = 196608;
    /** Larger than any message a server sends before ReadyForQuery (its longest is an ErrorResponse). */
    static final int MAX_MESSAGE = 1 << 20;

    private static final String SCRAM_SHA_256 = "SCRAM-SHA-256";

    private final ByteBufAllocator alloc;
    private final String user;
    private final Map<String, String> parameters;
    private final ByteBuf pending;
    private char[] password;
    private Status status = Status.RUNNING;
    private Method method = Method.NONE;
    private ScramClient scram;
    private boolean scramVerified;
    /** The authentication request that waits for a password (its code, and the md5 salt or SASL mechanisms). */
    private int waitingCode;
    private byte[] md5Salt;
    private List<String> mechanisms;
    private final Map<String, String> serverParameters = new LinkedHashMap<>();
    private int processId;
    private byte[] secret;
    private PgErrorResponse error;
    private String failure;

    /**
     * @param parameters the StartupMessage parameters, {@code user} first; {@code database} defaults to it
     * @param password   the password to answer with, or null to pause when one is asked
     */
    PgServerLogin(ByteBufAllocator alloc, Map<String, String> parameters, char[] password) {
        this.alloc = alloc;
        this.parameters = new LinkedHashMap<>(parameters);
        this.user = parameters.getOrDefault("user", "");
        this.password = password == null ? null : password.clone();
        this.pending = alloc.buffer(256);
    }

    /** The StartupMessage (protocol 3.0) that opens the login. */
    ByteBuf startupMessage() {
        ByteBuf out = alloc.buffer(64 + parameters.size() * 32);
        out.writeInt(0).writeInt(PROTOCOL_3_0);
        parameters.forEach((name, value) -> {
            cString(out, name);
            cString(out, value);
        });
        out.writeByte(0);
        out.setInt(0, out.readableBytes());
        return out;
    }

    /** Takes {@code bytes} (ownership moves here) and acts on every whole message they complete. */
    Status feed(ByteBuf bytes, Consumer<ByteBuf> toServer) {
        try {
            if (status == Status.READY || status == Status.FAILED) {
                return status;
            }
            pending.writeBytes(bytes);
        } finally {
            bytes.release();
        }
        return drain(toServer);
    }

    /** Answers the server's pending password request with {@code secret}; only in {@link Status#PASSWORD_NEEDED}. */
    Status password(char[] secret, Consumer<ByteBuf> toServer) {
        if (status != Status.PASSWORD_NEEDED) {
            throw new IllegalStateException("no password was asked");
        }
        password = secret.clone();
        status = Status.RUNNING;
        answer(waitingCode, toServer);
        return status == Status.RUNNING ? drain(toServer) : status;
    }

    private Status drain(Consumer<ByteBuf> toServer) {
        while (status == Status.RUNNING && pending.readableBytes() >= 5) {
            int start = pending.readerIndex();
            byte type = pending.getByte(start);
            int length = pending.getInt(start + 1);
            if (length < 4 || length > MAX_MESSAGE) {
                return fail(String.format("invalid message length %d for message '%c' during login", length, type));
            }
            if (pending.readableBytes() < 1 + length) {
                break;
            }
            pending.skipBytes(5);
            ByteBuf body = pending.readSlice(length - 4);
            message(type, body, toServer);
        }
        pending.discardReadBytes();
        return status;
    }

    private void message(byte type, ByteBuf body, Consumer<ByteBuf> toServer) {
        switch (type) {
            case 'R' -> authentication(body, toServer);
            case 'S' -> {
                String name = cString(body);
                String value = cString(body);
                if (name == null || value == null) {
                    fail("malformed ParameterStatus during login");
                } else {
                    serverParameters.put(name, value);
                }
            }
            case 'K' -> {
                if (body.readableBytes() < 4 + PgBackendKey.MIN_SECRET_LENGTH
                        || body.readableBytes() > 4 + PgBackendKey.MAX_SECRET_LENGTH) {
                    fail("malformed BackendKeyData during login");
                    return;
                }
                processId = body.readInt();
                secret = ByteBufUtil.getBytes(body);
            }
            case 'E' -> {
                error = PgErrorResponse.decode(body, body.readableBytes());
                status = Status.FAILED;
                failure = "the server refused the login: " + error;
                clearPassword();
            }
            case 'Z' -> {
                if (method == Method.SCRAM_SHA_256 && !scramVerified) {
                    fail("the server ended SCRAM authentication without proving it knows the password");
                    return;
                }
                status = Status.READY;
                clearPassword();
            }
            case 'N', 'v' -> {
                // A NoticeResponse, or NegotiateProtocolVersion (we ask for 3.0 and no options, so nothing to agree).
            }
            default -> fail(String.format("unexpected message '%c' during login", type));
        }
    }

    private void authentication(ByteBuf body, Consumer<ByteBuf> toServer) {
        if (body.readableBytes() < 4) {
            fail("malformed authentication request");
            return;
        }
        int code = body.readInt();
        switch (code) {
            case 0 -> {
                if (method == Method.SCRAM_SHA_256 && !scramVerified) {
                    fail("the server ended SCRAM authentication without proving it knows the password");
                }
            }
            case 3 -> askPassword(Method.CLEARTEXT, code, toServer);
            case 5 -> {
                if (body.readableBytes() != 4) {
                    fail("malformed AuthenticationMD5Password");
                    return;
                }
                md5Salt = ByteBufUtil.getBytes(body);
                askPassword(Method.MD5, code, toServer);
            }
            case 10 -> {
                List<String> offered = new ArrayList<>();
                String mechanism;
                while ((mechanism = cString(body)) != null && !mechanism.isEmpty()) {
                    offered.add(mechanism);
                }
                if (!offered.contains(SCRAM_SHA_256)) {
                    fail("the server offers only SASL mechanisms connguard does not speak: " + offered);
                    return;
                }
                // SCRAM-SHA-256-PLUS needs the TLS channel binding of this very connection; plain SCRAM is always
                // accepted by a server that offers it, and advertising only it keeps the gs2 header honest ("n").
                mechanisms = List.of(SCRAM_SHA_256);
                askPassword(Method.SCRAM_SHA_256, code, toServer);
            }
            case 11 -> scramContinue(body, toServer);
            case 12 -> scramFinal(body);
            default -> fail("the server asks for an authentication method connguard does not speak (code " + code
                    + "); pooled listeners support trust, password, md5 and scram-sha-256");
        }
    }

    private void askPassword(Method asked, int code, Consumer<ByteBuf> toServer) {
        method = asked;
        waitingCode = code;
        if (password == null) {
            status = Status.PASSWORD_NEEDED;
            return;
        }
        answer(code, toServer);
    }

    private void answer(int code, Consumer<ByteBuf> toServer) {
        switch (code) {
            case 3 -> toServer.accept(passwordMessage(new String(password)));
            case 5 -> toServer.accept(passwordMessage(md5(password, user, md5Salt)));
            case 10 -> {
                scram = ScramClient.builder()
                        .advertisedMechanisms(mechanisms)
                        .username("*") // the server takes the user from the StartupMessage
                        .password(password)
                        .stringPreparation(StringPreparation.POSTGRESQL_PREPARATION)
                        .nonceSupplier(() -> Randomness.nonce(18)) // its default reads /dev/urandom on the loop
                        .build();
                byte[] first = scram.clientFirstMessage().toString().getBytes(StandardCharsets.UTF_8);
                byte[] name = SCRAM_SHA_256.getBytes(StandardCharsets.US_ASCII);
                ByteBuf out = alloc.buffer(1 + 4 + name.length + 1 + 4 + first.length);
                out.writeByte('p').writeInt(4 + name.length + 1 + 4 + first.length);
                out.writeBytes(name).writeByte(0).writeInt(first.length).writeBytes(first);
                toServer.accept(out);
            }
            default -> throw new IllegalStateException("no answer for authentication code " + code);
        }
    }

    private void scramContinue(ByteBuf body, Consumer<ByteBuf> toServer) {
        if (scram == null) {
            fail("SASLContinue without a SASL exchange");
            return;
        }
        try {
            scram.serverFirstMessage(body.toString(StandardCharsets.UTF_8));
            byte[] last = scram.clientFinalMessage().toString().getBytes(StandardCharsets.UTF_8);
            toServer.accept(alloc.buffer(5 + last.length).writeByte('p').writeInt(4 + last.length).writeBytes(last));
        } catch (ScramException | IllegalArgumentException | IllegalStateException e) {
            fail("SCRAM: " + e.getMessage());
        }
    }

    private void scramFinal(ByteBuf body) {
        if (scram == null) {
            fail("SASLFinal without a SASL exchange");
            return;
        }
        try {
            scram.serverFinalMessage(body.toString(StandardCharsets.UTF_8));
            scramVerified = true;
        } catch (ScramException | IllegalArgumentException | IllegalStateException e) {
            fail("SCRAM: " + e.getMessage());
        }
    }

    private ByteBuf passwordMessage(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        return alloc.buffer(6 + bytes.length).writeByte('p').writeInt(5 + bytes.length).writeBytes(bytes).writeByte(0);
    }

    /** {@code "md5" + md5hex(md5hex(password + user) + salt)}: PostgreSQL's md5 response. */
    static String md5(char[] password, String user, byte[] salt) {
        try {
            MessageDigest md5 = MessageDigest.getInstance("MD5");
            md5.update(new String(password).getBytes(StandardCharsets.UTF_8));
            md5.update(user.getBytes(StandardCharsets.UTF_8));
            byte[] inner = hex(md5.digest()).getBytes(StandardCharsets.US_ASCII);
            md5.update(inner);
            md5.update(salt);
            return "md5" + hex(md5.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JVM has no MD5", e);
        }
    }

    private static String hex(byte[] bytes) {
        StringBuilder out = new StringBuilder(bytes.length * 2);
        for (byte b : bytes) {
            out.append(Character.forDigit((b >> 4) & 0xF, 16)).append(Character.forDigit(b & 0xF, 16));
        }
        return out.toString();
    }

    private Status fail(String reason) {
        status = Status.FAILED;
        failure = reason;
        clearPassword();
        return status;
    }

    private void clearPassword() {
        if (password != null) {
            Arrays.fill(password, '\0');
            password = null;
        }
        scram = null;
    }

    /** Releases the buffered bytes; call once when the login is over or abandoned. */
    void release() {
        if (pending.refCnt() > 0) {
            pending.release();
        }
        clearPassword();
    }

    // ---------------------------------------------------------------- outcome

    Status status() {
        return status;
    }

    /** The password exchange the server asked for ({@link Method#NONE}: trust). */
    Method method() {
        return method;
    }

    /** The parameters the server reported (ParameterStatus), in order. */
    Map<String, String> serverParameters() {
        return Collections.unmodifiableMap(serverParameters);
    }

    int processId() {
        return processId;
    }

    /** The backend's cancel secret, or null when the server sent no BackendKeyData. */
    byte[] secret() {
        return secret == null ? null : secret.clone();
    }

    /** The server's ErrorResponse, when it refused the login; null otherwise. */
    PgErrorResponse error() {
        return error;
    }

    /** Why the login failed (the server's error or connguard's own reason); null unless {@link Status#FAILED}. */
    String failure() {
        return failure;
    }

    /** Bytes the server sent after its first ReadyForQuery (none in a conforming exchange). */
    int leftover() {
        return pending.refCnt() > 0 ? pending.readableBytes() : 0;
    }

    private static void cString(ByteBuf out, String value) {
        out.writeCharSequence(value, StandardCharsets.UTF_8);
        out.writeByte(0);
    }

    /** Reads a C string, or null when no terminator is left. */
    private static String cString(ByteBuf body) {
        int end = body.indexOf(body.readerIndex(), body.writerIndex(), (byte) 0);
        if (end < 0) {
            return null;
        }
        String value = body.toString(body.readerIndex(), end - body.readerIndex(), StandardCharsets.UTF_8);
        body.readerIndex(end + 1);
        return value;
    }
}
