package io.connguard.mysql;

import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;

/**
 * One replay of a transaction-mode client's session state on the server connection lent to it: the
 * commands that turn the connection's state into the client's (its character set, one {@code SET SESSION},
 * COM_INIT_DB of its schema, {@code DO LAST_INSERT_ID(n)}), written at once, then their answers, one OK or
 * ERR each, which the client never sees. When all succeeded the connection's state is the client's; when
 * one failed its first ERR is kept for the client's command and the connection's state is not known.
 */
final class MySqlStateReplay {

    private static final int COM_INIT_DB = 0x02;

    private final MySqlServerConnection connection;
    private final int collation;
    private final boolean charset;
    private final boolean lastInsertId;
    private int answers;
    private ByteBuf error;

    private MySqlStateReplay(MySqlServerConnection connection, int collation, boolean charset, boolean lastInsertId) {
        this.connection = connection;
        this.collation = collation;
        this.charset = charset;
        this.lastInsertId = lastInsertId;
    }

    /**
     * Writes to {@code out} what makes {@code connection} hold {@code client}'s state (a login with
     * {@code collation}, then the client's changes); returns the replay waiting for their answers, or null when
     * nothing was needed. {@link MySqlSessionState.Replay#schemaCannotBeUnset()} is thrown as an
     * {@link IllegalStateException}: MySQL cannot unselect a schema.
     */
    static MySqlStateReplay write(ByteBuf out, MySqlSessionState client, MySqlServerConnection connection,
                                  int collation) {
        MySqlSessionState held = connection.state();
        int answers = 0;
        boolean charset = connection.collation() != collation || held.loginVariablesChanged();
        if (!charset && client.sameAs(held)) {
            return null;                                        // the common case: one application's clients alike
        }
        if (charset) {
            held.forgetLoginVariables();                        // set below as a login with the collation sets them
            command(out, MySqlCommand.COM_QUERY, MySqlServerConnection.charsetStatement(collation));
            answers++;
        }
        MySqlSessionState.Replay replay = MySqlSessionState.replay(client, held);
        if (replay.schemaCannotBeUnset()) {
            throw new IllegalStateException("the server connection has a schema selected and the client none, "
                    + "which MySQL cannot unselect");
        }
        if (replay.setStatement() != null) {
            command(out, MySqlCommand.COM_QUERY, replay.setStatement());
            answers++;
        }
        if (replay.schema() != null) {
            command(out, COM_INIT_DB, replay.schema());
            answers++;
        }
        String lastInsertId = MySqlSessionState.replayLastInsertId(client, held);
        if (lastInsertId != null) {
            command(out, MySqlCommand.COM_QUERY, lastInsertId);
            answers++;
        }
        if (answers == 0) {
            return null;
        }
        MySqlStateReplay pending = new MySqlStateReplay(connection, collation, charset, lastInsertId != null);
        pending.answers = answers;
        return pending;
    }

    /**
     * One whole answer packet (header included; not released here). Returns true when it was the last: the
     * connection then holds {@code client}'s state, or {@link #takeError()} has the first ERR.
     */
    boolean answer(ByteBuf packet, MySqlSessionState client) {
        int first = packet.readableBytes() > MySqlWire.HEADER_SIZE ? packet.getUnsignedByte(MySqlWire.HEADER_SIZE) : -1;
        if (first == MySqlWire.ERR) {
            if (error == null) {
                error = packet.retainedDuplicate();
            }
        } else if (first != MySqlWire.OK) {
            throw new MalformedPacketException("unexpected answer 0x" + Integer.toHexString(first)
                    + " to connguard's replay of the session state");
        }
        if (--answers > 0) {
            return false;
        }
        MySqlSessionState held = connection.state();
        if (error != null) {
            connection.collation(-1);                           // not known: set again at the next lend
            return true;
        }
        if (charset) {
            connection.collation(collation);
        }
        MySqlSessionState.replayed(client, held);
        if (lastInsertId) {
            MySqlSessionState.lastInsertIdReplayed(client, held);
        }
        return true;
    }

    /** The first ERR of the replay (a whole packet; the caller owns it), or null. */
    ByteBuf takeError() {
        ByteBuf taken = error;
        error = null;
        return taken;
    }

    void release() {
        if (error != null) {
            error.release();
            error = null;
        }
    }

    private static void command(ByteBuf out, int command, String argument) {
        int start = MySqlWire.startPacket(out, 0);
        out.writeByte(command);
        out.writeCharSequence(argument, StandardCharsets.UTF_8);
        MySqlWire.finishPacket(out, start);
    }
}
