package io.connguard.core.testing;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ProtocolModule;
import io.connguard.core.api.ProtocolSession;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.SessionContext;
import io.connguard.core.api.SessionState;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.CompositeByteBuf;

import java.nio.charset.StandardCharsets;

/**
 * A test-only protocol that proves the SPI: the client's first line is {@code HELLO user database
 * application}, answered by the proxy with {@code WELCOME} once the upstream is connected; after that
 * bytes are relayed raw. Client bytes make the session active, upstream bytes idle, except that the
 * upstream line {@code TX} makes it idle in a transaction, and the client line {@code BYE} is the client's own
 * goodbye (after which the upstream is expected to close). Errors are one line: {@code ERROR KIND message}.
 * Found by core through {@code META-INF/services} in the test classpath, like a real protocol module.
 */
public final class LineProtocol implements ProtocolModule {

    public static final String ID = "line";
    private static final int MAX_HELLO = 1024;

    @Override
    public String id() {
        return ID;
    }

    @Override
    public ProtocolSession newSession(SessionContext context) {
        return new Session(context);
    }

    private static final class Session implements ProtocolSession {
        private final SessionContext context;
        private CompositeByteBuf held;
        private boolean relaying;
        private boolean identified;
        private boolean saidBye;

        Session(SessionContext context) {
            this.context = context;
            this.held = context.alloc().compositeBuffer();
        }

        @Override
        public void onClientBytes(ByteBuf bytes) {
            if (relaying) {
                saidBye |= bytes.readableBytes() == 4 && bytes.toString(StandardCharsets.US_ASCII).equals("BYE\n");
                context.stateChanged(SessionState.ACTIVE);
                context.toUpstream(bytes);
                return;
            }
            held.addComponent(true, bytes);
            if (identified) {
                if (held.readableBytes() > MAX_HELLO) {
                    context.violation("more than " + MAX_HELLO + " bytes sent before the upstream answered");
                }
                return;
            }
            int eol = held.indexOf(held.readerIndex(), held.writerIndex(), (byte) '\n');
            if (eol < 0) {
                if (held.readableBytes() > MAX_HELLO) {
                    context.violation("HELLO line longer than " + MAX_HELLO + " bytes");
                }
                return;
            }
            String line = held.toString(held.readerIndex(), eol - held.readerIndex(), StandardCharsets.UTF_8);
            held.readerIndex(eol + 1);
            String[] words = line.trim().split(" ", -1);
            if (words.length < 2 || !words[0].equals("HELLO")) {
                context.violation("expected HELLO user database application");
                return;
            }
            identified = true;
            context.identified(new ClientIdentity(words[1], words.length > 2 ? words[2] : "",
                    words.length > 3 ? words[3] : ""));
        }

        @Override
        public void onUpstreamBytes(ByteBuf bytes) {
            boolean tx = bytes.readableBytes() >= 3 && bytes.getByte(bytes.readerIndex()) == 'T'
                    && bytes.getByte(bytes.readerIndex() + 1) == 'X' && bytes.getByte(bytes.readerIndex() + 2) == '\n';
            context.stateChanged(tx ? SessionState.IDLE_IN_TRANSACTION : SessionState.IDLE);
            context.toClient(bytes);
        }

        @Override
        public void onUpstreamConnected() {
            relaying = true;
            context.toClient(ByteBufUtil.writeAscii(context.alloc(), "WELCOME\n"));
            context.stateChanged(SessionState.IDLE);
            if (held.isReadable()) {
                context.stateChanged(SessionState.ACTIVE);
                context.toUpstream(held.retainedSlice());
            }
            held.release();
            held = null;
        }

        @Override
        public ByteBuf clientError(ProxyError error) {
            return ByteBufUtil.writeUtf8(context.alloc(), "ERROR " + error.kind() + " " + error.message() + "\n");
        }

        @Override
        public ByteBuf upstreamGoodbye() {
            return null;
        }

        @Override
        public boolean clientSaidGoodbye() {
            return saidBye;
        }

        @Override
        public String lastStatement() {
            return "";
        }

        @Override
        public void close() {
            if (held != null) {
                held.release();
                held = null;
            }
        }
    }
}
