package io.connguard.mysql;

import io.connguard.core.api.ListenerInfo;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@link MySqlPins} with classifiers borrowed per text: the outcome that counts at the response's end is the
 * pins' own, a classifier that remembers names stays with its client, and sql_mode follows the client.
 */
class MySqlPinsTest {

    private static MySqlPins pins() {
        return new MySqlPins(new TrackingContext(Conversation.listener(ListenerInfo.UpstreamTlsMode.DISABLE)));
    }

    /** One command's text, in two reads cut at {@code cut} (or whole when it is beyond the text). */
    private static void text(MySqlPins pins, String sql, int cut) {
        ByteBuf text = Unpooled.wrappedBuffer(sql.getBytes(StandardCharsets.UTF_8));
        int first = Math.min(cut, text.writerIndex());
        pins.textStart();
        pins.text(text, 0, first);
        if (first < text.writerIndex()) {
            pins.text(text, first, text.writerIndex() - first);
        }
        pins.textEnd();
        text.release();
    }

    /** The thread's spare classifier, made so if it has none. */
    private static MySqlStatementClassifier spare() {
        MySqlStatementClassifier spare = MySqlStatementClassifier.borrow(false, false);
        spare.giveBack();
        return spare;
    }

    @Test
    void aClientWithNoRememberedNamesGivesItsClassifierBackAtTheTextsEnd() {
        MySqlStatementClassifier spare = spare();
        MySqlPins pins = pins();
        text(pins, "SET @x = 1", 100);
        assertThat(spare()).as("the pins took the spare and gave it back").isSameAs(spare);
        assertThat(pins.reason()).as("a started pin counts at the text's end").isEqualTo("user_variable");
        pins.ended(false);
        assertThat(pins.reason()).isEqualTo("user_variable");

        text(pins, "SELECT 1", 4);
        pins.ended(false);
        assertThat(pins.reason()).isEqualTo("user_variable");
        assertThat(spare()).isSameAs(spare);
    }

    @Test
    void endsCountOnlyWhenTheResponseSucceedsAndNotForAPipelinedCommand() {
        MySqlPins pins = pins();
        text(pins, "LOCK TABLES t READ", 100);
        pins.ended(false);
        assertThat(pins.reason()).isEqualTo("lock_tables");
        text(pins, "UNLOCK TABLES", 100);
        pins.ended(true);
        assertThat(pins.reason()).as("the UNLOCK failed").isEqualTo("lock_tables");
        text(pins, "UNLOCK TABLES", 3);
        text(pins, "SELECT 1", 100);                         // pipelined before the UNLOCK's response
        pins.ended(false);
        pins.ended(false);
        assertThat(pins.reason()).as("a command pipelined behind it: its end does not count").isEqualTo("lock_tables");
        text(pins, "UNLOCK TABLES", 5);
        pins.ended(false);
        assertThat(pins.any()).isFalse();
    }

    @Test
    void aClientWhoseClassifierRemembersNamesKeepsItWhileAnotherClientOnTheLoopBorrows() {
        MySqlStatementClassifier spare = spare();
        MySqlPins withTemp = pins();
        MySqlPins other = pins();
        text(withTemp, "CREATE TEMPORARY TABLE tmp1 (id INT)", 9);
        withTemp.ended(false);
        assertThat(spare()).as("kept by the client that remembers tmp1: the thread made another").isNotSameAs(spare);
        text(other, "CREATE TEMPORARY TABLE tmp2 (id INT)", 100);
        other.ended(false);
        text(other, "DROP TEMPORARY TABLE tmp2", 100);
        other.ended(false);
        assertThat(other.any()).as("its last temporary table dropped").isFalse();
        assertThat(withTemp.reason()).isEqualTo("temp_table");
        text(withTemp, "DROP TEMPORARY TABLE tmp1", 4);
        withTemp.ended(false);
        assertThat(withTemp.any()).as("the name it remembered").isFalse();
    }

    @Test
    void sqlModeFollowsTheClientIntoEachBorrowedClassifier() {
        MySqlPins pins = pins();
        pins.followStatus(MySqlStatementClassifier.SERVER_STATUS_NO_BACKSLASH_ESCAPES | 2, false);
        text(pins, "SELECT 'a\\'; SET @x = 1; -- '", 100);   // no backslash escapes: the literal ends after the \
        pins.ended(false);
        assertThat(pins.reason()).isEqualTo("user_variable");

        MySqlPins other = pins();
        text(other, "SELECT 'a\\'; SET @x = 1; -- '", 100);  // backslash escapes: one literal
        other.ended(false);
        assertThat(other.any()).as("the spare took the other client's sql_mode").isFalse();
    }

    @Test
    void theCollationOfSetNamesLastsUntilTheNextText() {
        MySqlPins pins = pins();
        text(pins, "SET NAMES utf8mb4 COLLATE utf8mb4_bin", 100);
        assertThat(pins.namesCollation()).isEqualTo("utf8mb4_bin");
        pins.ended(false);
        assertThat(pins.namesCollation()).isEqualTo("utf8mb4_bin");
        text(pins, "SELECT 1", 100);
        assertThat(pins.namesCollation()).isNull();
    }
}
