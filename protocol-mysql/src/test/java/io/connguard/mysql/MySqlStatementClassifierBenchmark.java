package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

/**
 * What {@link MySqlStatementClassifier} costs per COM_QUERY on one core: the text is classified from a
 * direct buffer, as a transaction-mode session would for every COM_QUERY and COM_STMT_PREPARE. The score
 * is ns per command; {@code -prof gc} must show ~0 bytes allocated per operation. Not a test: run it with
 * {@code bench/jmh.sh mysql MySqlStatementClassifierBenchmark}.
 *
 * <p>Texts: {@code point-select} (sysbench oltp_point_select's statement), {@code read-write} (the
 * statements of one oltp_read_write transaction as a multi-statement), {@code orm-insert} (an 881-byte INSERT
 * with backquoted names, escaped strings and a comment), {@code dump-header} (mysqldump's executable
 * comments, SET of user and system variables).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Dio.netty.leakDetection.level=disabled"})
public class MySqlStatementClassifierBenchmark {

    @Param({"point-select", "read-write", "orm-insert", "dump-header"})
    public String text;

    private final MySqlStatementClassifier classifier = new MySqlStatementClassifier();
    private ByteBuf body;

    @Setup(Level.Trial)
    public void setUp() {
        String sql = switch (text) {
            case "point-select" -> "SELECT c FROM sbtest1 WHERE id=5013";
            case "read-write" -> "BEGIN; SELECT c FROM sbtest1 WHERE id=5013; SELECT c FROM sbtest1 WHERE id BETWEEN 4 AND 103;"
                    + " SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 4 AND 103;"
                    + " SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 4 AND 103 ORDER BY c;"
                    + " UPDATE sbtest1 SET k=k+1 WHERE id=4992; UPDATE sbtest1 SET c='8372-0911-8827' WHERE id=5001;"
                    + " DELETE FROM sbtest1 WHERE id=5002;"
                    + " INSERT INTO sbtest1 (id, k, c, pad) VALUES (5002, 4991, '0823-1162', '9912-3381'); COMMIT";
            case "orm-insert" -> ormInsert();
            case "dump-header" -> "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;"
                    + " /*!40101 SET NAMES utf8mb4 */; /*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;"
                    + " /*!40103 SET TIME_ZONE='+00:00' */; /*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;"
                    + " /*M!100616 SET @OLD_NOTE_VERBOSITY=@@NOTE_VERBOSITY, NOTE_VERBOSITY=0 */;";
            default -> throw new IllegalArgumentException(text);
        };
        byte[] bytes = sql.getBytes(StandardCharsets.UTF_8);
        body = Unpooled.directBuffer(bytes.length).writeBytes(bytes);
    }

    private static String ormInsert() {
        StringBuilder sql = new StringBuilder("/* app=orders, controller=checkout */ INSERT INTO `shop`.`orders` (");
        for (int i = 0; i < 30; i++) {
            sql.append(i == 0 ? "" : ", ").append("`column_").append(i).append('`');
        }
        sql.append(") VALUES (");
        for (int i = 0; i < 30; i++) {
            sql.append(i == 0 ? "" : ", ").append(i % 3 == 0 ? "'value with \\'quotes\\' " + i + "'" : Integer.toString(i * 7919));
        }
        return sql.append(")").toString();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        body.release();
    }

    @Benchmark
    public int classify() {
        classifier.begin();
        classifier.accept(body, 0, body.writerIndex());
        classifier.finish();
        return classifier.apply(0, true);
    }
}
