package io.connguard.mysql;

/**
 * Capability and status flag values of the MySQL / MariaDB protocol, as one 64-bit set: the low 32 bits
 * are the classic capability flags, the high 32 bits MariaDB's extended capabilities.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/group__group__cs__capabilities__flags.html">MySQL capability flags</a>
 * @see <a href="https://mariadb.com/kb/en/connection/#capabilities">MariaDB capabilities</a>
 */
final class MySqlCapabilities {

    /** CLIENT_LONG_PASSWORD; MariaDB reads it as CLIENT_MYSQL: when clear, extended capabilities follow. */
    static final long CLIENT_MYSQL = 1L;
    static final long CLIENT_CONNECT_WITH_DB = 1L << 3;
    static final long CLIENT_COMPRESS = 1L << 5;
    static final long CLIENT_LOCAL_FILES = 1L << 7;
    static final long CLIENT_PROTOCOL_41 = 1L << 9;
    static final long CLIENT_SSL = 1L << 11;
    static final long CLIENT_TRANSACTIONS = 1L << 13;
    static final long CLIENT_SECURE_CONNECTION = 1L << 15;
    static final long CLIENT_MULTI_STATEMENTS = 1L << 16;
    static final long CLIENT_MULTI_RESULTS = 1L << 17;
    static final long CLIENT_PLUGIN_AUTH = 1L << 19;
    static final long CLIENT_CONNECT_ATTRS = 1L << 20;
    static final long CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1L << 21;
    static final long CLIENT_SESSION_TRACK = 1L << 23;
    static final long CLIENT_DEPRECATE_EOF = 1L << 24;
    static final long CLIENT_OPTIONAL_RESULTSET_METADATA = 1L << 25;
    static final long CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1L << 26;
    static final long CLIENT_QUERY_ATTRIBUTES = 1L << 27;

    static final long MARIADB_CLIENT_PROGRESS = 1L << 32;
    static final long MARIADB_CLIENT_COM_MULTI = 1L << 33;
    static final long MARIADB_CLIENT_STMT_BULK_OPERATIONS = 1L << 34;
    static final long MARIADB_CLIENT_EXTENDED_METADATA = 1L << 35;
    static final long MARIADB_CLIENT_CACHE_METADATA = 1L << 36;
    static final long MARIADB_CLIENT_BULK_UNIT_RESULTS = 1L << 37;

    /**
     * Never passed on from the server's greeting: compression (the proxy reads packet headers, which
     * compression hides), TLS (the client leg's TLS is connguard's own: offered only under clientTls
     * allow / require), query attributes (they would move the statement text inside COM_QUERY) and
     * MariaDB's COM_MULTI (the tracker does not follow it).
     */
    static final long HIDDEN_FROM_CLIENT = CLIENT_COMPRESS | CLIENT_ZSTD_COMPRESSION_ALGORITHM | CLIENT_SSL
            | CLIENT_QUERY_ATTRIBUTES | MARIADB_CLIENT_COM_MULTI;

    /** Flags that change how responses are framed: the client and the real server must agree on them. */
    static final long FRAMING = CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF | CLIENT_OPTIONAL_RESULTSET_METADATA
            | CLIENT_PLUGIN_AUTH | CLIENT_SECURE_CONNECTION | MARIADB_CLIENT_CACHE_METADATA | CLIENT_SESSION_TRACK
            | CLIENT_TRANSACTIONS;

    static final int SERVER_STATUS_IN_TRANS = 0x0001;
    static final int SERVER_MORE_RESULTS_EXISTS = 0x0008;
    static final int SERVER_STATUS_CURSOR_EXISTS = 0x0040;

    private MySqlCapabilities() {
    }

    static boolean has(long capabilities, long flag) {
        return (capabilities & flag) != 0;
    }
}
