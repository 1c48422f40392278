// pgjdbc against Brikk: stream DDL, appends (Statement and PreparedStatement
// with parameters, a batch), parameterised queries (also past pgjdbc's
// prepareThreshold, where it switches to a named server-side statement and
// binary results), system columns, transactions through setAutoCommit(false)
// (commit, rollback, isolation from a second connection), LISTEN via
// PGConnection.getNotifications(timeoutMs), a live COPY (SUBSCRIBE …)
// TO STDOUT read with CopyManager.copyOut and ended with a cancel request,
// DatabaseMetaData (tables, columns, primary keys, indexes) and columns of
// types pgjdbc looks up in pg_type (jsonb, interval).
//
// Connects to BRIKK_HOST:BRIKK_PORT as user brikk, database brikk. Exits 0 on
// success, 1 with one FAIL line naming the step, the error and its SQLSTATE.
//
// Build and run (scripts/run-clients.sh does this):
//   javac -cp /usr/share/java/postgresql.jar -d build BrikkClient.java
//   java -cp /usr/share/java/postgresql.jar:build BrikkClient

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Properties;

import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.copy.CopyOut;

public class BrikkClient {
    static final String NAME = "pgjdbc";
    static final int NOTIFY_TIMEOUT_MS = 10_000;
    static final String COLUMNS = "(task_id TEXT, kind TEXT, n BIGINT) WITH (partitions = 4, key = 'task_id')";
    static final boolean VERBOSE = System.getenv("BRIKK_CLIENTS_VERBOSE") != null;

    static String current = null;
    static long stepStart = 0;

    interface Body {
        void run() throws Exception;
    }

    static void step(String what, Body body) {
        current = what;
        stepStart = System.nanoTime();
        try {
            body.run();
        } catch (Throwable e) {
            fail(e);
        }
        if (VERBOSE) {
            System.out.printf("  ok %s: %s (%.3fs)%n", NAME, what, (System.nanoTime() - stepStart) / 1e9);
        }
    }

    static void fail(Throwable e) {
        String code = (e instanceof SQLException && ((SQLException) e).getSQLState() != null)
                ? " (SQLSTATE " + ((SQLException) e).getSQLState() + ")" : "";
        if (System.getenv("BRIKK_CLIENTS_TRACEBACK") != null) {
            e.printStackTrace();
        }
        String msg = String.valueOf(e.getMessage()).replace("\n", " | ");
        System.err.println("FAIL " + NAME + ": step '" + current + "': " + e.getClass().getSimpleName() + ": " + msg + code);
        System.exit(1);
    }

    static void check(boolean cond, String msg) {
        if (!cond) {
            throw new AssertionError(msg);
        }
    }

    static List<String> keys(Connection conn, String sql, Object... params) throws SQLException {
        try (PreparedStatement ps = conn.prepareStatement(sql)) {
            for (int i = 0; i < params.length; i++) {
                ps.setObject(i + 1, params[i]);
            }
            List<String> out = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    out.add(rs.getString(1));
                }
            }
            return out;
        }
    }

    static PGNotification waitNotification(Connection conn, String channel) throws SQLException {
        PGConnection pg = conn.unwrap(PGConnection.class);
        long deadline = System.currentTimeMillis() + NOTIFY_TIMEOUT_MS;
        while (true) {
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) {
                throw new AssertionError("no notification on channel " + channel + " within " + NOTIFY_TIMEOUT_MS / 1000 + "s");
            }
            PGNotification[] got = pg.getNotifications((int) left);
            if (got != null) {
                for (PGNotification n : got) {
                    if (n.getName().equals(channel)) {
                        return n;
                    }
                }
            }
        }
    }

    static void exec(Connection conn, String sql) throws SQLException {
        try (Statement st = conn.createStatement()) {
            st.execute(sql);
        }
    }

    static void insert(Connection conn, String s, String id, String kind, long n) throws SQLException {
        try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + s + " VALUES (?, ?, ?)")) {
            ps.setString(1, id);
            ps.setString(2, kind);
            ps.setLong(3, n);
            int count = ps.executeUpdate();
            check(count == 1, "update count " + count + " != 1");
        }
    }

    public static void main(String[] args) {
        String host = System.getenv().getOrDefault("BRIKK_HOST", "127.0.0.1");
        String port = System.getenv().getOrDefault("BRIKK_PORT", "5487");
        String url = "jdbc:postgresql://" + host + ":" + port + "/brikk";
        Properties props = new Properties();
        props.setProperty("user", "brikk");
        String s = "clients_pgjdbc_" + ProcessHandle.current().pid();
        Connection[] c = new Connection[2];

        step("connect", () -> {
            c[0] = DriverManager.getConnection(url, props);
            c[1] = DriverManager.getConnection(url, props);
        });
        Connection conn = c[0];
        Connection other = c[1];

        step("create stream", () -> {
            exec(conn, "DROP STREAM IF EXISTS " + s);
            exec(conn, "CREATE STREAM " + s + " " + COLUMNS);
        });

        step("insert literal", () -> {
            try (Statement st = conn.createStatement()) {
                int count = st.executeUpdate("INSERT INTO " + s + " VALUES ('t1', 'build', 1), ('t2', 'test', 2)");
                check(count == 2, "update count " + count + " != 2");
            }
        });

        step("insert with parameters", () -> {
            insert(conn, s, "t3", "build", 3);
            insert(conn, s, "t4", "big", 5_000_000_000L);
        });

        step("batch insert", () -> {
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + s + " VALUES (?, ?, ?)")) {
                String[][] rows = {{"t5", "deploy", "5"}, {"t6", "deploy", "6"}, {"t7", "test", "7"}};
                for (String[] r : rows) {
                    ps.setString(1, r[0]);
                    ps.setString(2, r[1]);
                    ps.setLong(3, Long.parseLong(r[2]));
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                check(Arrays.equals(counts, new int[] {1, 1, 1}), "batch counts " + Arrays.toString(counts));
            }
        });

        step("query with parameters", () -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT task_id, kind, n FROM " + s + " WHERE kind = ? AND n >= ? ORDER BY n")) {
                ps.setString(1, "build");
                ps.setLong(2, 2);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "no rows");
                    String got = rs.getString(1) + "," + rs.getString(2) + "," + rs.getLong(3);
                    check(got.equals("t3,build,3"), "got " + got);
                    check(!rs.next(), "more than one row");
                }
            }
            List<String> big = keys(conn, "SELECT n FROM " + s + " WHERE task_id = ?", "t4");
            check(big.equals(List.of("5000000000")), "int8 round trip: got " + big);
        });

        step("repeated PreparedStatement (server-prepared, binary)", () -> {
            // pgjdbc switches to a named server statement and binary results
            // from the 5th execution (prepareThreshold).
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT task_id, n, _partition, _offset, _timestamp FROM " + s + " WHERE kind = ? ORDER BY n")) {
                for (int i = 0; i < 8; i++) {
                    String kind = (i % 2 == 0) ? "deploy" : "test";
                    List<String> want = (i % 2 == 0) ? List.of("t5:5", "t6:6") : List.of("t2:2", "t7:7");
                    ps.setString(1, kind);
                    List<String> got = new ArrayList<>();
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            got.add(rs.getString(1) + ":" + rs.getLong(2));
                            int part = rs.getInt(3);
                            check(part >= 0 && part < 4, "_partition " + part);
                            check(rs.getLong(4) >= 0, "_offset " + rs.getLong(4));
                            Timestamp ts = rs.getTimestamp(5);
                            check(ts != null && Math.abs(System.currentTimeMillis() - ts.getTime()) < 300_000,
                                    "_timestamp " + ts + " is not near now");
                        }
                    }
                    check(got.equals(want), "execution " + (i + 1) + ", kind=" + kind + ": got " + got + ", want " + want);
                }
            }
        });

        step("system columns", () -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT _partition, _offset, _timestamp, _key, task_id FROM " + s + " WHERE _key = ?")) {
                ps.setString(1, "t1");
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "no row for _key = 't1'");
                    check(rs.getInt(1) >= 0 && rs.getInt(1) < 4, "_partition " + rs.getInt(1));
                    check(rs.getLong(2) >= 0, "_offset " + rs.getLong(2));
                    check(rs.getTimestamp(3) != null, "_timestamp is null");
                    check("t1".equals(rs.getString(4)) && "t1".equals(rs.getString(5)),
                            "_key " + rs.getString(4) + ", task_id " + rs.getString(5));
                    check(!rs.next(), "more than one row");
                }
            }
        });

        step("transaction commit", () -> {
            conn.setAutoCommit(false); // pgjdbc sends BEGIN with the first statement
            insert(conn, s, "tx1", "txn", 100);
            insert(conn, s, "tx2", "txn", 101);
            List<String> seen = keys(other, "SELECT task_id FROM " + s + " WHERE kind = ?", "txn");
            check(seen.isEmpty(), "uncommitted rows visible to another connection: " + seen);
            conn.commit();
            seen = keys(other, "SELECT task_id FROM " + s + " WHERE kind = ?", "txn");
            Collections.sort(seen);
            check(seen.equals(List.of("tx1", "tx2")), "after COMMIT another connection sees " + seen);
        });

        step("transaction rollback", () -> {
            insert(conn, s, "rb1", "rolledback", 200);
            conn.rollback();
            conn.setAutoCommit(true);
            List<String> seen = keys(conn, "SELECT task_id FROM " + s + " WHERE kind = ?", "rolledback");
            check(seen.isEmpty(), "rolled-back row visible: " + seen);
            seen = keys(other, "SELECT task_id FROM " + s + " WHERE kind = ?", "rolledback");
            check(seen.isEmpty(), "rolled-back row visible to another connection: " + seen);
        });

        step("LISTEN stream", () -> {
            exec(conn, "LISTEN " + s);
            insert(other, s, "n1", "notify", 42);
            PGNotification n = waitNotification(conn, s);
            String p = n.getParameter();
            // No JSON library in the JDK: check the fields textually.
            for (String field : new String[] {"\"partition\":", "\"offset\":", "\"timestamp\":", "\"key\":\"n1\"",
                    "\"row\":", "\"task_id\":\"n1\"", "\"kind\":\"notify\"", "\"n\":42"}) {
                check(p.replace(" ", "").contains(field), "payload lacks " + field + ": " + p);
            }
            exec(conn, "UNLISTEN " + s);
        });

        step("LISTEN/NOTIFY channel", () -> {
            String chan = s + "_chan";
            exec(conn, "LISTEN " + chan);
            exec(other, "NOTIFY " + chan + ", 'hello from pgjdbc'");
            PGNotification n = waitNotification(conn, chan);
            check("hello from pgjdbc".equals(n.getParameter()), "payload " + n.getParameter());
            exec(conn, "UNLISTEN *");
        });

        step("COPY (SUBSCRIBE) live rows", () -> {
            long total;
            try (Statement st = other.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM " + s)) {
                rs.next();
                total = rs.getLong(1);
            }
            // Every record from the beginning, then each one as it is
            // committed: one tab-separated line per record (_partition,
            // _offset, _timestamp, _key, then the columns).
            CopyOut copy = conn.unwrap(PGConnection.class).getCopyAPI()
                    .copyOut("COPY (SUBSCRIBE " + s + " FROM BEGINNING) TO STDOUT");
            List<String[]> rows = new ArrayList<>();
            while (true) {
                byte[] line = copy.readFromCopy(); // waits for the next committed record
                String[] f = new String(line, java.nio.charset.StandardCharsets.UTF_8).stripTrailing().split("\t", -1);
                rows.add(f);
                if (rows.size() == total) insert(other, s, "live", "copy", 7);
                if (f[4].equals("live")) break;
            }
            // A cancel request ends it: the rows already sent are read, then
            // the statement fails with 57014 and the connection goes on.
            conn.unwrap(PGConnection.class).cancelQuery();
            try {
                while (copy.readFromCopy() != null) {
                    // rows committed before the cancel
                }
                check(false, "the subscription ended without an error");
            } catch (SQLException e) {
                check("57014".equals(e.getSQLState()), "ended with " + e);
            }
            check(rows.size() == total + 1, rows.size() + " rows, want " + (total + 1));
            java.util.Map<String, Long> next = new java.util.HashMap<>();
            for (String[] f : rows) {
                long want = next.getOrDefault(f[0], 0L);
                check(Long.parseLong(f[1]) == want, "partition " + f[0] + ": offset " + f[1] + " out of order");
                next.put(f[0], want + 1);
            }
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT 1")) {
                check(rs.next() && rs.getInt(1) == 1, "connection usable after the cancel");
            }
        });

        String t = s + "_board";
        step("DatabaseMetaData: tables, columns, primary key, index, foreign keys", () -> {
            exec(conn, "CREATE TABLE " + t + " (agent TEXT, slot INT, fact JSONB, PRIMARY KEY (slot, agent))");
            java.sql.DatabaseMetaData meta = conn.getMetaData();
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = meta.getTables(null, "public", s + "%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    tables.add(rs.getString("TABLE_NAME"));
                }
            }
            Collections.sort(tables);
            check(tables.equals(Arrays.asList(s, t)), "getTables: " + tables);
            List<String> columns = new ArrayList<>();
            try (ResultSet rs = meta.getColumns(null, "public", t, "%")) {
                while (rs.next()) {
                    columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
                }
            }
            check(columns.containsAll(Arrays.asList("agent:text", "slot:int4", "fact:jsonb")), "getColumns: " + columns);
            List<String> key = new ArrayList<>();
            try (ResultSet rs = meta.getPrimaryKeys(null, "public", t)) {
                while (rs.next()) {
                    key.add(rs.getString("COLUMN_NAME") + "#" + rs.getInt("KEY_SEQ") + "@" + rs.getString("PK_NAME"));
                }
            }
            check(key.equals(Arrays.asList("slot#1@" + t + "_pkey", "agent#2@" + t + "_pkey")), "getPrimaryKeys: " + key);
            List<String> index = new ArrayList<>();
            try (ResultSet rs = meta.getIndexInfo(null, "public", t, true, false)) {
                while (rs.next()) {
                    index.add(rs.getString("INDEX_NAME") + ":" + rs.getString("COLUMN_NAME") + ":" + rs.getBoolean("NON_UNIQUE"));
                }
            }
            check(index.equals(Arrays.asList(t + "_pkey:slot:false", t + "_pkey:agent:false")), "getIndexInfo: " + index);
            try (ResultSet rs = meta.getImportedKeys(null, "public", t)) {
                check(!rs.next(), "getImportedKeys: a table without foreign keys");
            }
        });

        step("ResultSetMetaData and getObject of jsonb and interval columns", () -> {
            exec(conn, "INSERT INTO " + t + " VALUES ('a1', 1, '{\"claims\": 2}')");
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT fact, interval '90 minutes' AS wait FROM " + t)) {
                check(rs.next(), "one row");
                java.sql.ResultSetMetaData md = rs.getMetaData();
                check(md.getColumnTypeName(1).equals("jsonb") && md.getColumnTypeName(2).equals("interval"),
                        "column types " + md.getColumnTypeName(1) + ", " + md.getColumnTypeName(2));
                check(String.valueOf(rs.getObject(1)).equals("{\"claims\": 2}"), "fact " + rs.getObject(1));
                Object wait = rs.getObject(2);
                check(wait instanceof org.postgresql.util.PGInterval
                        && ((org.postgresql.util.PGInterval) wait).getMinutes() == 30
                        && ((org.postgresql.util.PGInterval) wait).getHours() == 1, "wait " + wait);
            }
            exec(conn, "DROP TABLE " + t);
        });

        step("drop stream", () -> {
            exec(conn, "DROP STREAM " + s);
            conn.close();
            other.close();
        });

        System.out.println("PASS " + NAME);
        System.exit(0);
    }
}
