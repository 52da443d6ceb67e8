package io.connguard.postgres;

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
 * What {@link PgStatementClassifier} costs per message on one core: the text of one Query body is
 * classified from a direct buffer, as a transaction-mode session would for every Query and Parse. The
 * score is ns per message; {@code -prof gc} must show ~0 bytes allocated per operation. Not a test: run
 * it with {@code bench/jmh.sh postgres PgStatementClassifierBenchmark}.
 *
 * <p>Texts: {@code pgbench-select} (the 50-byte statement of {@code pgbench -S}), {@code pgbench-tpcb}
 * (the five statements of pgbench's TPC-B-like script in one Query), {@code orm-insert} (a 1.3 KB
 * INSERT with quoted names, strings and a comment, as ORMs send), {@code do-block} (a plpgsql DO block read
 * as code).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Dio.netty.leakDetection.level=disabled"})
public class PgStatementClassifierBenchmark {

    @Param({"pgbench-select", "pgbench-tpcb", "orm-insert", "do-block"})
    public String text;

    private final PgStatementClassifier classifier = new PgStatementClassifier();
    private ByteBuf body;

    @Setup(Level.Trial)
    public void setUp() {
        String sql = switch (text) {
            case "pgbench-select" -> "SELECT abalance FROM pgbench_accounts WHERE aid = 4711;";
            case "pgbench-tpcb" -> "BEGIN; UPDATE pgbench_accounts SET abalance = abalance + -1722 WHERE aid = 81;"
                    + " SELECT abalance FROM pgbench_accounts WHERE aid = 81;"
                    + " UPDATE pgbench_tellers SET tbalance = tbalance + -1722 WHERE tid = 7;"
                    + " UPDATE pgbench_branches SET bbalance = bbalance + -1722 WHERE bid = 1;"
                    + " INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)"
                    + " VALUES (7, 1, 81, -1722, CURRENT_TIMESTAMP); END;";
            case "orm-insert" -> ormInsert();
            case "do-block" -> "DO $$ DECLARE n int; BEGIN SELECT count(*) INTO n FROM t WHERE s = 'it''s';"
                    + " IF n > 0 THEN UPDATE t SET s = 'done' WHERE s = 'todo'; END IF; END $$";
            default -> throw new IllegalArgumentException(text);
        };
        byte[] bytes = (sql + "\0").getBytes(StandardCharsets.UTF_8);
        body = Unpooled.directBuffer(bytes.length).writeBytes(bytes);
    }

    private static String ormInsert() {
        StringBuilder sql = new StringBuilder("/* app=orders, controller=checkout */ INSERT INTO \"public\".\"orders\" (");
        for (int i = 0; i < 30; i++) {
            sql.append(i == 0 ? "" : ", ").append("\"column_").append(i).append('"');
        }
        sql.append(") VALUES (");
        for (int i = 0; i < 30; i++) {
            sql.append(i == 0 ? "" : ", ").append(i % 3 == 0 ? "'value with ''quotes'' " + i + "'" : "$" + (i + 1));
        }
        return sql.append(") RETURNING \"id\", \"created_at\"").toString();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        body.release();
    }

    @Benchmark
    public int classify() {
        classifier.beginQuery();
        classifier.accept(body, 0, body.writerIndex());
        classifier.finish();
        return classifier.pinsStarted();
    }
}
