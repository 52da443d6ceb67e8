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
 *
 * <p>The classifier is borrowed from the event loop's spare for each text and given back at its end, the
 * outcome that counts when the response ends kept here (a few fields): an idle client holds none. A client
 * whose classifier remembers names of temporary tables or SQL prepared statements keeps its own.
 */
final class MySqlPins implements MySqlCommandScanner.TextListener {

    private final SessionContext context;
    /** While a text is read, or for good once it remembers names; null otherwise. */
    private MySqlStatementClassifier classifier;
    private int pins;
    /** A command was read whose response has not ended yet: its outcome, to apply then. */
    private boolean classifying;
    private int started;
    private int ended;
    private boolean consumedNext;
    /** {@link MySqlStatementClassifier#namesCollation()} of that command. */
    private String namesCollation;
    private boolean heldThisLend;
    /** The client's sql_mode, for the classifier of its next text. */
    private boolean noBackslashEscapes;
    private boolean ansiQuotes;

    MySqlPins(SessionContext context) {
        this.context = context;
    }

    @Override
    public void textStart() {
        if (classifying) {                                      // pipelined: the earlier command's ends do not count
            apply(false);
        }
        namesCollation = null;
        if (classifier == null) {
            classifier = MySqlStatementClassifier.borrow(noBackslashEscapes, ansiQuotes);
        }
        classifier.begin();
    }

    @Override
    public void text(ByteBuf buf, int index, int length) {
        classifier.accept(buf, index, length);
    }

    @Override
    public void textEnd() {
        MySqlStatementClassifier read = classifier;
        read.finish();
        if (read.unknown()) {
            context.log().debug("statement text connguard cannot be sure of pins the client: {}",
                    read.unknownReason());
        }
        add(read.pinsStarted());
        classifying = true;
        started = read.pinsStarted();
        ended = read.pinsEnded();
        consumedNext = read.consumesNextStatementPins();
        namesCollation = read.namesCollation();
        if (read.names() == null) {
            classifier = null;
            read.giveBack();
        }
    }

    /** A command's response ended ({@code error}: with ERR). */
    void ended(boolean error) {
        if (classifying) {
            int before = pins;
            apply(!error);
            add(pins & ~before);                                // started ones were counted at the text's end
        }
    }

    /** The pins after the command read last, {@code succeeded} or not; its names committed by its classifier. */
    private void apply(boolean succeeded) {
        classifying = false;
        pins = classifier != null ? classifier.apply(pins, succeeded)
                : MySqlStatementClassifier.pinsAfter(pins, succeeded, started, ended, consumedNext);
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
            noBackslashEscapes = (status & MySqlStatementClassifier.SERVER_STATUS_NO_BACKSLASH_ESCAPES) != 0;
            this.ansiQuotes = (status & MySqlStatementClassifier.SERVER_STATUS_ANSI_QUOTES) != 0 || ansiQuotes;
            if (classifier != null) {
                classifier.sqlMode(noBackslashEscapes, this.ansiQuotes);
            }
        }
    }

    /** The collation of the last text's {@code SET NAMES .. COLLATE} (null: none), for the session state. */
    String namesCollation() {
        return namesCollation;
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
