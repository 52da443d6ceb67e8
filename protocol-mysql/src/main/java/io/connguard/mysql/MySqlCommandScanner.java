package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * Finds command boundaries in the client's stream during the command phase and forwards the client's own
 * buffers, reading headers at their indexes. The few commands the proxy may rewrite (a short COM_QUERY
 * that might be a KILL, COM_PROCESS_KILL, COM_CHANGE_USER) are looked at whole before they leave; only
 * when such a start, or a packet header, is split across reads are those few bytes held back in a small
 * buffer until the rest arrives. LOCAL INFILE data and authentication data pass as packets, not commands.
 *
 * <p>With a {@link Gate} (a connection on probation), each command is first shown to the gate; from the first
 * one it stops, the client's bytes are held back, in order, up to {@link #MAX_HELD_BACK} bytes, until
 * {@link #open()} lets them through.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html">Command phase</a>
 */
final class MySqlCommandScanner {

    /** Where the client's commands go once scanned (the session). */
    interface Output {
        /** Takes the reference of {@code bytes}. */
        void toUpstream(ByteBuf bytes);

        /** Rewrites a whole COM_CHANGE_USER packet (at index, with header), or returns null to forward it. */
        ByteBuf rewriteChangeUser(ByteBuf buf, int payloadIndex, int payloadLength);
    }

    /** Decides, for a connection on probation, which commands may go upstream before it has a slot. */
    interface Gate {
        /** Whether the command packet at {@code index} (header included, {@code need} bytes present) may pass. */
        boolean allows(ByteBuf buf, int index, int need);

        /** A command was stopped: the connection needs its slot now. Called once, after the stop is recorded. */
        void stopped();

        /** More than {@link #MAX_HELD_BACK} bytes arrived while stopped. */
        void overflow();

        /**
         * How many bytes from the start of a command packet ({@code length} its payload length, {@code command}
         * its first byte) must be present before {@link #allows} sees it; -1 for the scanner's own rule.
         */
        default int needed(ByteBuf buf, int index, int end, int length, int command) {
            return -1;
        }

        /** After {@link #allows} let a command pass: what goes upstream instead of its first bytes, or null. */
        default ByteBuf takeReplacement() {
            return null;
        }

        /** With a replacement: the rest of the command packet is dropped rather than forwarded. */
        default boolean dropsRest() {
            return false;
        }
    }

    /** Reads the SQL text of COM_QUERY and COM_STMT_PREPARE as it passes (transaction mode's classifier). */
    interface TextListener {
        void textStart();

        /** {@code length} bytes of the text at {@code index} of {@code buf}, not consumed. */
        void text(ByteBuf buf, int index, int length);

        void textEnd();
    }

    private static final int CHANGE_USER_MAX = 64 * 1024;
    /** What a connection waiting for its slot may send ahead (drivers pipeline their set-up commands). */
    static final int MAX_HELD_BACK = 1024 * 1024;

    private final ByteBufAllocator alloc;
    private final MySqlCommandTracker tracker;
    private final MySqlKillRewriter killRewriter;
    private final MySqlStatementCapture capture;
    private final Output upstream;
    private ByteBuf held;
    private int remaining;
    private boolean continues;
    private boolean capturing;
    private Gate gate;
    private TextListener textListener;
    /** The text of the current command goes to {@link #textListener}. */
    private boolean texting;
    /** The rest of the current packet is dropped (its start was replaced by the gate). */
    private boolean dropping;
    /** The client's bytes from the first stopped command on, while the gate is shut. */
    private java.util.ArrayDeque<ByteBuf> heldBack;
    private int heldBackBytes;
    /**
     * The session was closed, possibly from inside {@link #scan} (a malformed COM_CHANGE_USER is a violation,
     * and core closes the session before the rewriter returns): nothing more may be held.
     */
    private boolean closed;

    MySqlCommandScanner(ByteBufAllocator alloc, MySqlCommandTracker tracker, MySqlKillRewriter killRewriter,
                        MySqlStatementCapture capture, Output upstream) {
        this.alloc = alloc;
        this.tracker = tracker;
        this.killRewriter = killRewriter;
        this.capture = capture;
        this.upstream = upstream;
    }

    /** Shows every command to {@code gate} before it goes upstream (probation). */
    void gate(Gate gate) {
        this.gate = gate;
    }

    /** Shows the text of every COM_QUERY and COM_STMT_PREPARE to {@code listener}. */
    void textListener(TextListener listener) {
        this.textListener = listener;
    }

    /** Bytes held back while the gate is shut. */
    int heldBackBytes() {
        return heldBackBytes;
    }

    /** Whether commands are being held back, waiting for the slot. */
    boolean holdingBack() {
        return heldBack != null;
    }

    /** The gate is lifted: what was held back goes upstream now, scanned as usual. */
    void open() {
        gate = null;
        resume();
    }

    /** What was held back goes through the gate again, which stays (it may stop a later command). */
    void resume() {
        java.util.ArrayDeque<ByteBuf> waiting = heldBack;
        heldBack = null;
        heldBackBytes = 0;
        if (waiting == null) {
            return;
        }
        ByteBuf next;
        while ((next = waiting.poll()) != null) {
            if (closed) {
                next.release();
            } else {
                scan(next);
            }
        }
    }

    /** Scans and forwards {@code in}; takes ownership of it. */
    void scan(ByteBuf in) {
        if (heldBack != null) {
            holdBack(in);
            return;
        }
        try {
            int i = in.readerIndex();
            int end = in.writerIndex();
            if (held != null) {
                i = completeHeld(in, i, end);
                if (held != null || closed) {
                    return;
                }
                if (heldBack != null) {
                    if (i < end) {
                        holdBack(in.retainedSlice(i, end - i));
                    }
                    gate.stopped();
                    return;
                }
            }
            int run = i;
            while (i < end && !closed) {
                if (remaining > 0) {
                    int n = Math.min(remaining, end - i);
                    if (dropping) {
                        forward(in, run, i);
                        i += n;
                        remaining -= n;
                        run = i;
                        dropping = remaining > 0;
                        continue;
                    }
                    if (capturing) {
                        capture.append(in, i, n);
                    }
                    if (texting) {
                        textListener.text(in, i, n);
                    }
                    i += n;
                    remaining -= n;
                    capturing &= remaining > 0;
                    if (texting && remaining == 0) {
                        texting = false;
                        textListener.textEnd();
                    }
                    continue;
                }
                int need = needed(in, i, end);
                if (need > end - i) {
                    forward(in, run, i);
                    held = alloc.heapBuffer(Math.max(need, 16)).writeBytes(in, i, end - i);
                    return;
                }
                if (stops(in, i, need)) {
                    forward(in, run, i);
                    heldBack = new java.util.ArrayDeque<>();
                    holdBack(in.retainedSlice(i, end - i));
                    gate.stopped();
                    return;
                }
                ByteBuf replacement = start(in, i, need);
                if (replacement != null) {
                    forward(in, run, i);
                    upstream.toUpstream(replacement);
                    run = i + need;
                }
                i += need;
            }
            forward(in, run, end);
        } finally {
            in.release();
        }
    }

    /** Tops the held bytes up from {@code in} until they can be decided; returns where {@code in} goes on. */
    private int completeHeld(ByteBuf in, int i, int end) {
        while (true) {
            int need = needed(held, held.readerIndex(), held.writerIndex());
            int have = held.readableBytes();
            if (have >= need) {
                ByteBuf packetStart = held;
                held = null;
                if (stops(packetStart, packetStart.readerIndex(), need)) {
                    heldBack = new java.util.ArrayDeque<>();
                    holdBack(packetStart);
                    return i;
                }
                ByteBuf replacement = start(packetStart, packetStart.readerIndex(), need);
                if (replacement != null) {
                    packetStart.release();
                    upstream.toUpstream(replacement);
                } else {
                    upstream.toUpstream(packetStart);
                }
                return i;
            }
            if (i == end) {
                return i;
            }
            int n = Math.min(need - have, end - i);
            held.writeBytes(in, i, n);
            i += n;
        }
    }

    /** Whether the gate stops the command whose start is at {@code i}. */
    private boolean stops(ByteBuf buf, int i, int need) {
        return gate != null && need > MySqlWire.HEADER_SIZE
                && isCommand(buf.getUnsignedMediumLE(i), buf.getUnsignedByte(i + 3)) && !gate.allows(buf, i, need);
    }

    private void holdBack(ByteBuf bytes) {
        heldBackBytes += bytes.readableBytes();
        heldBack.add(bytes);
        if (heldBackBytes > MAX_HELD_BACK && gate != null) {
            gate.overflow();
        }
    }

    /** How many bytes from a packet start at {@code i} must be present before it can be handled. */
    private int needed(ByteBuf buf, int i, int end) {
        if (end - i < MySqlWire.HEADER_SIZE) {
            return MySqlWire.HEADER_SIZE;
        }
        int length = buf.getUnsignedMediumLE(i);
        if (!isCommand(length, buf.getUnsignedByte(i + 3))) {
            return MySqlWire.HEADER_SIZE;
        }
        if (end - i < MySqlWire.HEADER_SIZE + 1) {
            return MySqlWire.HEADER_SIZE + 1;
        }
        int whole = MySqlWire.HEADER_SIZE + length;
        if (gate != null) {
            int wanted = gate.needed(buf, i, end, length, buf.getUnsignedByte(i + MySqlWire.HEADER_SIZE));
            if (wanted >= 0) {
                return wanted;
            }
        }
        return switch (buf.getUnsignedByte(i + MySqlWire.HEADER_SIZE)) {
            case MySqlCommand.COM_QUERY -> length <= MySqlKillRewriter.MAX_QUERY_LENGTH + 1 ? whole : 5;
            case MySqlCommand.COM_PROCESS_KILL -> length == 5 ? whole : 5;
            case MySqlCommand.COM_CHANGE_USER -> length <= CHANGE_USER_MAX ? whole : 5;
            case MySqlCommand.COM_STMT_EXECUTE -> MySqlWire.HEADER_SIZE + Math.min(length, 6);
            default -> 5;
        };
    }

    private boolean isCommand(int length, int sequenceId) {
        return !continues && length > 0 && sequenceId == 0 && tracker.clientMode() == MySqlCommandTracker.ClientMode.COMMANDS;
    }

    /** Handles the first {@code need} bytes of a packet at {@code i}; returns their replacement or null. */
    private ByteBuf start(ByteBuf buf, int i, int need) {
        int length = buf.getUnsignedMediumLE(i);
        int sequenceId = buf.getUnsignedByte(i + 3);
        boolean isCommand = isCommand(length, sequenceId);
        boolean continuation = continues;
        continues = length == MySqlWire.MAX_PAYLOAD;
        remaining = length - (need - MySqlWire.HEADER_SIZE);
        capturing = false;
        dropping = false;
        if (texting) {
            texting = false;
            textListener.textEnd();
        }
        if (!isCommand) {
            tracker.onClientPacket(sequenceId, length, continuation);
            return null;
        }
        int payload = i + MySqlWire.HEADER_SIZE;
        int command = buf.getUnsignedByte(payload);
        ByteBuf replacement = null;
        switch (command) {
            case MySqlCommand.COM_QUERY, MySqlCommand.COM_STMT_PREPARE -> {
                capture.start();
                capture.append(buf, payload + 1, need - MySqlWire.HEADER_SIZE - 1);
                capturing = remaining > 0;
                if (textListener != null) {
                    textListener.textStart();
                    textListener.text(buf, payload + 1, need - MySqlWire.HEADER_SIZE - 1);
                    texting = remaining > 0;
                    if (!texting) {
                        textListener.textEnd();
                    }
                }
                if (command == MySqlCommand.COM_QUERY && need == MySqlWire.HEADER_SIZE + length) {
                    replacement = killRewriter.rewriteQuery(alloc, buf, payload + 1, length - 1);
                }
            }
            case MySqlCommand.COM_PROCESS_KILL -> {
                if (length == 5) {
                    replacement = killRewriter.rewriteProcessKill(alloc, buf, payload + 1);
                }
            }
            case MySqlCommand.COM_CHANGE_USER -> {
                if (need == MySqlWire.HEADER_SIZE + length) {
                    replacement = upstream.rewriteChangeUser(buf, payload, length);
                }
            }
            default -> { }
        }
        int executeFlags = command == MySqlCommand.COM_STMT_EXECUTE && length >= 6 ? buf.getUnsignedByte(payload + 5) : 0;
        tracker.onCommand(command, executeFlags);
        ByteBuf instead = gate != null ? gate.takeReplacement() : null;
        if (instead != null) {
            if (replacement != null) {
                replacement.release();
            }
            replacement = instead;
            dropping = remaining > 0 && gate.dropsRest();
        }
        return replacement;
    }

    private void forward(ByteBuf in, int from, int to) {
        if (to > from) {
            upstream.toUpstream(from == in.readerIndex() && to == in.writerIndex() ? in.retain() : in.retainedSlice(from, to - from));
        }
    }

    /** True when the upstream has received whole packets only, so a COM_QUIT may follow. */
    boolean atBoundary() {
        return remaining == 0 && !continues;
    }

    void close() {
        closed = true;
        if (held != null) {
            held.release();
            held = null;
        }
        if (heldBack != null) {
            heldBack.forEach(ByteBuf::release);
            heldBack = null;
        }
    }
}
