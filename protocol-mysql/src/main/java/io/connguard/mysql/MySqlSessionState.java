package io.connguard.mysql;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The session state a MySQL session has changed since its connection was fresh, as the server reported
 * it in OK packets ({@link MySqlSessionChanges}): system variables (character sets and collation,
 * autocommit, sql_mode, time_zone, transaction isolation, ... every variable with
 * {@code session_track_system_variables='*'}) and the schema. A pooler keeps one for each client (what
 * the client set) and one for each server connection (what that connection now holds); {@link #replay}
 * computes what turns a server connection into the client's: the variables to set (and those to put
 * back to their DEFAULT) and the schema to select. Variables that connguard's own tracking depends on
 * ({@code session_track_*}) are never replayed; a client that changes them is reported by
 * {@link #trackingChanged()}. Not thread-safe; used on one event loop.
 *
 * <p>A pooled server connection is prepared with {@link #ENABLE_TRACKING} (MariaDB 10.2+, MySQL 5.7+), and
 * connguard logs in with {@code CLIENT_SESSION_TRACK}.
 *
 * @see <a href="https://mariadb.com/kb/en/session-state-information/">Session state information</a>
 */
final class MySqlSessionState {

    /** What a pooled server connection runs once after its login. */
    static final String ENABLE_TRACKING = "SET SESSION session_track_system_variables = '*', "
            + "session_track_schema = ON, session_track_state_change = ON";

    /** What turns one session into another: a SET statement (or null) and a schema for COM_INIT_DB (or null). */
    record Replay(String setStatement, String schema, boolean schemaCannotBeUnset) {
        static final Replay NOTHING = new Replay(null, null, false);

        boolean isEmpty() {
            return setStatement == null && schema == null && !schemaCannotBeUnset;
        }
    }

    /**
     * Read once per pool on a fresh server connection, in this order, for the baseline of
     * {@link #MySqlSessionState(String, Map)}: the variables a session takes from its login's collation, not
     * from the server's global values that {@code SET ... = DEFAULT} restores.
     */
    static final String BASELINE_QUERY = "SELECT @@character_set_client, @@character_set_connection, "
            + "@@character_set_results, @@collation_connection";
    static final List<String> LOGIN_VARIABLES = List.of("character_set_client", "character_set_connection",
            "character_set_results", "collation_connection");

    /**
     * Variables that the next statement consumes (its insert id, its random seed): replaying them later would
     * apply them twice. The classifier pins {@code SET insert_id} instead.
     */
    static final java.util.Set<String> ONE_SHOT = java.util.Set.of("insert_id", "last_insert_id", "identity",
            "rand_seed1", "rand_seed2");

    private final String baselineSchema;
    private final Map<String, String> baseline;
    /** The variables changed, in the order reported: the shared empty map until the first change. */
    private Map<String, String> variables = Map.of();
    private String schema;
    private boolean trackingChanged;
    private boolean lost;
    private long lastInsertId;

    /** A fresh session whose schema is {@code baselineSchema} ("" for none), whose other variables are the globals. */
    MySqlSessionState(String baselineSchema) {
        this(baselineSchema, Map.of());
    }

    /**
     * A fresh session whose schema is {@code baselineSchema} ("" for none): the pool's database; {@code baseline}
     * holds the values a fresh session of the pool has where they are not the server's globals (the
     * {@link #LOGIN_VARIABLES} read with {@link #BASELINE_QUERY}); shared, not copied.
     */
    MySqlSessionState(String baselineSchema, Map<String, String> baseline) {
        this.baselineSchema = baselineSchema == null ? "" : baselineSchema;
        this.baseline = baseline;
    }

    /**
     * Records the changes of the OK of a command whose text set {@code namesCollation} ({@link
     * MySqlStatementClassifier#namesCollation()}, or null): MariaDB reports SET NAMES ... COLLATE without
     * collation_connection, which is recorded from the text when the character set was reported.
     */
    void apply(MySqlSessionChanges changes, String namesCollation) {
        apply(changes);
        if (changes != null && namesCollation != null && changes.variables().containsKey("character_set_connection")
                && !changes.variables().containsKey("collation_connection")) {
            writable().put("collation_connection", namesCollation);
        }
    }

    /** Records the changes an OK packet reported; null (they could not be read) marks the state lost. */
    void apply(MySqlSessionChanges changes) {
        if (changes == null) {
            lost = true;
            return;
        }
        for (Map.Entry<String, String> e : changes.variables().entrySet()) {
            String name = e.getKey();
            if (name.startsWith("session_track_")) {
                trackingChanged = true;
            } else if (ONE_SHOT.contains(name)) {
                continue;                                       // used up by the next statement: never replayed
            } else if (!validName(name)) {
                lost = true;
            } else {
                writable().put(name, e.getValue());
            }
        }
        if (changes.schema() != null) {
            schema = changes.schema();
        }
    }

    /**
     * Follows LAST_INSERT_ID() from an OK packet's leading bytes (header, affected rows, last insert id), which
     * the command scanner already has: a statement that generated a value (or ran LAST_INSERT_ID(expr) in an
     * INSERT, UPDATE, DELETE or REPLACE) reports it; one that did not reports 0 and the value stays.
     */
    void ok(byte[] prefix, int prefixLength) {
        if (prefixLength < 2 || MySqlWire.lenencSize(prefix[1] & 0xFF) < 0) {
            return;
        }
        long id = MySqlWire.readLenencInt(prefix, 1 + MySqlWire.lenencSize(prefix[1] & 0xFF), prefixLength);
        if (id > 0) {
            lastInsertId = id;
        }
    }

    /** What LAST_INSERT_ID() returns in this session, as far as the OK packets told. */
    long lastInsertId() {
        return lastInsertId;
    }

    /**
     * The statement that makes LAST_INSERT_ID() of {@code current} (a server connection) return what it returns
     * for {@code target} (the client), to run before a statement that {@link MySqlStatementClassifier#readsLastInsertId()
     * reads it}; null when they agree. {@code DO} answers with one OK packet, easy to swallow.
     */
    static String replayLastInsertId(MySqlSessionState target, MySqlSessionState current) {
        return target.lastInsertId == current.lastInsertId ? null
                : "DO LAST_INSERT_ID(" + Long.toUnsignedString(target.lastInsertId) + ")";
    }

    /** After {@link #replayLastInsertId} succeeded. */
    static void lastInsertIdReplayed(MySqlSessionState target, MySqlSessionState current) {
        current.lastInsertId = target.lastInsertId;
    }

    /** The session was reset (COM_RESET_CONNECTION): back to the server's defaults and the same schema. */
    void reset() {
        lastInsertId = 0;
        variables = Map.of();
        trackingChanged = false;
        lost = false;
    }

    /** The character set variables are as a login with the session's collation leaves them: nothing to replay. */
    void forgetLoginVariables() {
        if (!variables.isEmpty()) {
            LOGIN_VARIABLES.forEach(variables::remove);
        }
    }

    /** Whether a character set variable of the login was changed (SET NAMES, SET character_set_...). */
    boolean loginVariablesChanged() {
        for (String name : LOGIN_VARIABLES) {
            if (variables.containsKey(name)) {
                return true;
            }
        }
        return false;
    }

    /** Whether {@code other} holds the same variables, schema and LAST_INSERT_ID (nothing to replay; allocates nothing). */
    boolean sameAs(MySqlSessionState other) {
        return lastInsertId == other.lastInsertId && schema().equals(other.schema()) && variables.equals(other.variables);
    }

    /** The variables changed since the connection was fresh, with their values as the server reported them. */
    Map<String, String> variables() {
        return java.util.Collections.unmodifiableMap(variables);
    }

    /** The current schema: the last one reported, or the baseline. */
    String schema() {
        return schema != null ? schema : baselineSchema;
    }

    /** The client changed session_track_*: connguard no longer sees what it changes, the client must stay pinned. */
    boolean trackingChanged() {
        return trackingChanged;
    }

    /** An OK's session state could not be read: the state is not known, the client must stay pinned. */
    boolean lost() {
        return lost;
    }

    /** sql_mode has NO_BACKSLASH_ESCAPES (the classifier's lexer must follow it). */
    boolean noBackslashEscapes() {
        return sqlModeHas("NO_BACKSLASH_ESCAPES");
    }

    /** sql_mode has ANSI_QUOTES (or a mode that implies it: ANSI, DB2, ORACLE, POSTGRESQL, MSSQL, MAXDB). */
    boolean ansiQuotes() {
        return sqlModeHas("ANSI_QUOTES") || sqlModeHas("ANSI") || sqlModeHas("ORACLE") || sqlModeHas("DB2")
                || sqlModeHas("POSTGRESQL") || sqlModeHas("MSSQL") || sqlModeHas("MAXDB");
    }

    private boolean sqlModeHas(String mode) {
        String value = variables.get("sql_mode");
        if (value == null) {
            return false;
        }
        for (String part : value.split(",")) {
            if (part.trim().equalsIgnoreCase(mode)) {
                return true;
            }
        }
        return false;
    }

    /**
     * What turns {@code current} (a server connection's state) into {@code target} (a client's): every
     * variable whose value differs is set, every variable {@code current} changed that {@code target} did
     * not is set back to its value in {@code target}'s baseline, or else to DEFAULT (the global value, which a
     * fresh session starts from), and the schema is
     * selected when it differs. Character set variables come first and collations after them (setting a
     * character set resets its collation). Values are written as numbers when they are numbers, as plain
     * literals when printable and free of quotes and backslashes, else as hexadecimal literals, so the
     * statement reads the same whatever the server connection's sql_mode.
     */
    static Replay replay(MySqlSessionState target, MySqlSessionState current) {
        List<String> assignments = new ArrayList<>();
        List<String> names = new ArrayList<>(target.variables.keySet());
        for (String name : current.variables.keySet()) {
            if (!target.variables.containsKey(name)) {
                names.add(name);
            }
        }
        names.sort((a, b) -> Integer.compare(rank(a), rank(b)));   // stable: otherwise as reported
        for (String name : names) {
            String wanted = target.variables.get(name);
            String now = current.variables.get(name);
            if (wanted == null) {
                String fresh = target.baseline.get(name);
                if (fresh == null) {
                    assignments.add("SESSION " + name + " = DEFAULT");
                } else if (!fresh.equals(now)) {
                    assignments.add("SESSION " + name + " = " + value(name, fresh));
                }
            } else if (!wanted.equals(now)) {
                assignments.add("SESSION " + name + " = " + value(name, wanted));
            }
        }
        String set = assignments.isEmpty() ? null : "SET " + String.join(", ", assignments);
        String wantedSchema = target.schema();
        boolean schemaDiffers = !wantedSchema.equals(current.schema());
        boolean cannotUnset = schemaDiffers && wantedSchema.isEmpty();
        return set == null && !schemaDiffers ? Replay.NOTHING
                : new Replay(set, schemaDiffers && !cannotUnset ? wantedSchema : null, cannotUnset);
    }

    /** After a successful replay, {@code current} holds what {@code target} holds. */
    static void replayed(MySqlSessionState target, MySqlSessionState current) {
        if (target.variables.isEmpty()) {
            current.variables = Map.of();
        } else {
            current.writable().clear();
            current.variables.putAll(target.variables);
        }
        current.schema = target.schema();
    }

    /** The variables, as a map of this state's own (a session that changed nothing keeps none). */
    private Map<String, String> writable() {
        if (!(variables instanceof LinkedHashMap)) {
            variables = new LinkedHashMap<>();
        }
        return variables;
    }

    private static int rank(String name) {
        if (name.startsWith("character_set")) {
            return 0;
        }
        return name.startsWith("collation") ? 1 : 2;
    }

    /**
     * The value of {@code name} as the replay writes it. The server reports a NULL value as an empty string;
     * {@code character_set_results = NULL} (results not converted, what Connector/J sets) is the one a client
     * sets, and '' is no character set.
     */
    private static String value(String name, String value) {
        if (value.isEmpty() && NULLABLE.contains(name)) {
            return "NULL";
        }
        return literal(value);
    }

    /** Variables whose empty reported value stands for NULL. */
    private static final java.util.Set<String> NULLABLE = java.util.Set.of("character_set_results");

    static String literal(String value) {
        if (value.matches("-?[0-9]+(\\.[0-9]+)?")) {
            return value;
        }
        boolean plain = true;
        for (int i = 0; i < value.length() && plain; i++) {
            char c = value.charAt(i);
            plain = c >= 0x20 && c < 0x7F && c != '\'' && c != '\\' && c != '"';
        }
        if (plain) {
            return "'" + value + "'";
        }
        StringBuilder hex = new StringBuilder("X'");
        for (byte b : value.getBytes(StandardCharsets.UTF_8)) {
            hex.append(Character.forDigit((b >> 4) & 0xF, 16)).append(Character.forDigit(b & 0xF, 16));
        }
        return hex.append('\'').toString();
    }

    private static boolean validName(String name) {
        if (name.isEmpty() || name.length() > 64) {
            return false;
        }
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            if (!(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.')) {
                return false;
            }
        }
        return true;
    }
}
