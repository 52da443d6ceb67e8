package io.connguard.mysql;

import io.connguard.core.api.SessionContext;
import io.netty.buffer.ByteBuf;

/**
 * The pins of one transaction-mode client ({@link MySqlPin}): fed the SQL text of every COM_QUERY and
 * COM_STMT_PREPARE as it passes, it starts the pins {@link MySqlStatementClassifier} finds when the text
 * ends, and applies the ends when the command's response ends without ERR (a command pipelined behind it
 * first: then its ends do not count). Each new reason is reported to core ({@link SessionContext#pinned}).
 * It also remembers whether a pin was held during the current lend: that connection is reset before
 * another client gets it.
 */
final class MySqlPins implements MySqlCommandScanner.TextListener {

    private final SessionContext context;
    private final MySqlStatementClassifier classifier = new MySqlStatementClassifier();
    private int pins;
    /** The classifier read a command whose response has not ended yet. */
    private boolean classifying;
    private boolean heldThisLend;

    MySqlPins(SessionContext context) {
        this.context = context;
    }

    @Override
    public void textStart() {
        if (classifying) {                                      // pipelined: the earlier command's ends do not count
            classifying = false;
            pins = classifier.apply(pins, false);
        }
        classifier.begin();
    }

    @Override
    public void text(ByteBuf buf, int index, int length) {
        classifier.accept(buf, index, length);
    }

    @Override
    public void textEnd() {
        classifier.finish();
        if (classifier.unknown()) {
            context.log().debug("statement text connguard cannot be sure of pins the client: {}",
                    classifier.unknownReason());
        }
        add(classifier.pinsStarted());
        classifying = true;
    }

    /** A command's response ended ({@code error}: with ERR). */
    void ended(boolean error) {
        if (classifying) {
            classifying = false;
            int after = classifier.apply(pins, !error);
            add(after & ~pins);                                 // started ones were counted at the text's end
            pins = after;
        }
    }

    /** Pins {@code bits} of {@link MySqlPin}. */
    void add(int bits) {
        int fresh = bits & ~pins;
        if (bits != 0) {
            heldThisLend = true;
        }
        pins |= bits;
        for (MySqlPin pin : MySqlPin.values()) {
            if ((fresh & pin.bit()) != 0) {
                context.pinned(pin.label());
            }
        }
    }

    /** Follows sql_mode from an OK or EOF's status flags (and, on MySQL, ANSI_QUOTES from the tracked state). */
    void followStatus(int status, boolean ansiQuotes) {
        if (status != MySqlStatus.NONE) {
            classifier.sqlMode((status & MySqlStatementClassifier.SERVER_STATUS_NO_BACKSLASH_ESCAPES) != 0,
                    (status & MySqlStatementClassifier.SERVER_STATUS_ANSI_QUOTES) != 0 || ansiQuotes);
        }
    }

    /** The collation of the last {@code SET NAMES .. COLLATE}, for the session state. */
    String namesCollation() {
        return classifier.namesCollation();
    }

    boolean any() {
        return pins != 0;
    }

    /** Whether a pin was held since the last {@link #lendStarted()} (or is held now). */
    boolean heldThisLend() {
        return heldThisLend || pins != 0;
    }

    /** A new lend starts (a connection that served a pin was reset, or had none). */
    void lendStarted() {
        heldThisLend = false;
    }

    /** The connection's state is not known: it must be reset before another client gets it. */
    void needReset() {
        heldThisLend = true;
    }

    /** Why the client is pinned now, or null: the reasons' labels, comma-separated. */
    String reason() {
        if (pins == 0) {
            return null;
        }
        StringBuilder why = new StringBuilder();
        for (MySqlPin pin : MySqlPin.of(pins)) {
            if (!why.isEmpty()) {
                why.append(',');
            }
            why.append(pin.label());
        }
        return why.toString();
    }
}
