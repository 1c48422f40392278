//! COPY and `brikk import` / `brikk export`: every format round-trips,
//! STDIN works from tokio-postgres and psql's \copy, and bad input writes
//! nothing.

use std::process::Command;

use brikk_tests::{brikk_bin, copy_from_stdin, sqlstate, Server};
use tokio_postgres::Client;

const CREATE: &str =
    "(id BIGINT NOT NULL, name TEXT, score DOUBLE PRECISION, ok BOOLEAN, at TIMESTAMPTZ, raw BYTEA, amount NUMERIC(12,4))";

async fn with_rows(c: &Client, name: &str) {
    c.batch_execute(&format!("CREATE STREAM {name} {CREATE} WITH (partitions = 2, key = 'id')")).await.unwrap();
    c.batch_execute(&format!(
        "INSERT INTO {name} VALUES \
         (1, 'plain', 1.5, true, '2026-01-02 03:04:05.123456+00', '\\x00ff', 1234.5678), \
         (2, '', -0.25, false, '1999-12-31 23:59:59+00', '', -0.0001), \
         (3, NULL, NULL, NULL, NULL, NULL, NULL), \
         (4, 'tab\there, comma, \"quote\" and\nnewline \\ backslash', 1e300, true, '2026-11-25 00:00:00+00', '\\x5c4e', 99999999.9999), \
         (5, 'ünïcødé ✓', 0, false, '1970-01-01 00:00:00+00', '\\x', 0)"
    ))
    .await
    .unwrap();
}

/// Every row of a stream as text, by id.
async fn dump(c: &Client, name: &str) -> Vec<String> {
    let rows = c.simple_query(&format!("SELECT * FROM {name} ORDER BY id")).await.unwrap();
    rows.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect::<Vec<_>>().join("|"))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_round_trips_through_a_file() {
    let (dir, server) = super::fresh();
    let c = server.client().await.unwrap();
    with_rows(&c, "src").await;
    let want = dump(&c, "src").await;
    assert_eq!(want.len(), 5);
    for (i, (file, opts)) in [
        ("a.parquet", ""),
        ("a.csv", ""),
        ("h.csv", "(FORMAT csv, HEADER)"),
        ("a.jsonl", ""),
        ("a.txt", ""),
        ("a.data", "(FORMAT text)"),
    ]
    .iter()
    .enumerate()
    {
        let path = dir.path().join(file);
        let n = c.execute(&format!("COPY src TO '{}' {opts}", path.display()), &[]).await.unwrap();
        assert_eq!(n, 5, "{file}");
        let dst = format!("dst{i}");
        c.batch_execute(&format!("CREATE STREAM {dst} {CREATE}")).await.unwrap();
        let n = c.execute(&format!("COPY {dst} FROM '{}' {opts}", path.display()), &[]).await.unwrap();
        assert_eq!(n, 5, "{file}");
        assert_eq!(dump(&c, &dst).await, want, "{file} round-trips");
    }
    // A column list and a query.
    let path = dir.path().join("q.csv");
    c.execute(&format!("COPY (SELECT id, name FROM src WHERE id > 3) TO '{}'", path.display()), &[]).await.unwrap();
    c.batch_execute("CREATE STREAM part (id BIGINT, name TEXT, extra TEXT)").await.unwrap();
    c.execute(&format!("COPY part (id, name) FROM '{}'", path.display()), &[]).await.unwrap();
    let got = dump(&c, "part").await;
    assert_eq!(got.len(), 2);
    assert!(got[1].starts_with("5|ünïcødé ✓|NULL"), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_stdin_is_atomic_and_names_the_bad_line() {
    let (_dir, server) = super::fresh();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM s (id BIGINT NOT NULL, name TEXT) WITH (partitions = 3)").await.unwrap();
    // A bulk load in several CopyData messages, split mid-line.
    let mut data = String::new();
    for i in 0..20_000 {
        data.push_str(&format!("{i},\"name, {i}\"\n"));
    }
    let copied = copy_from_stdin(&c, "COPY s FROM STDIN (FORMAT csv)", data.as_bytes(), 7_777).await.unwrap();
    assert_eq!(copied, 20_000);
    let r = c.query_one("SELECT count(*), count(DISTINCT id), min(name) FROM s", &[]).await.unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (20_000, 20_000));
    assert_eq!(r.get::<_, String>(2), "name, 0");
    // Bad input anywhere: the right SQLSTATE, the line, and nothing written.
    for (bad, code, line) in [
        ("1,a\n2,b,extra\n", "22P04", "line 2"),
        ("1,a\nnot a number,b\n", "22P02", "line 2"),
        ("1,a\n2\n", "22P04", "line 2"),
        ("1,a\n,b\n", "23502", ""),
        ("1,\"unterminated\n", "22P04", ""),
    ] {
        let e = copy_from_stdin(&c, "COPY s FROM STDIN (FORMAT csv)", bad.as_bytes(), usize::MAX).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some(code), "{bad:?}: {e:?}");
        assert!(e.as_db_error().unwrap().message().contains(line), "{e:?}");
        let n: i64 = c.query_one("SELECT count(*) FROM s", &[]).await.unwrap().get(0);
        assert_eq!(n, 20_000, "nothing of {bad:?} was written");
    }
    // Inside a transaction the COPY is part of it.
    c.batch_execute("BEGIN").await.unwrap();
    copy_from_stdin(&c, "COPY s FROM STDIN", b"-1\tin txn\n", usize::MAX).await.unwrap();
    c.batch_execute("ROLLBACK").await.unwrap();
    let n: i64 = c.query_one("SELECT count(*) FROM s WHERE id = -1", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn copy_into_a_table_inserts_as_insert_does() {
    let (dir, server) = super::fresh();
    let c = server.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE facts (id BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL, body JSONB, n INT DEFAULT 7); \
         CREATE VIEW topics AS SELECT topic FROM facts",
    )
    .await
    .unwrap();
    // Identity and DEFAULT fill the columns COPY leaves out; text becomes
    // each column's type; every row is a change in the changelog.
    let csv = "topic,body\nrain,\"{\"\"p\"\": 0.7}\"\nsun,\n";
    let copied =
        copy_from_stdin(&c, "COPY facts (topic, body) FROM STDIN (FORMAT csv, HEADER)", csv.as_bytes(), usize::MAX)
            .await
            .unwrap();
    assert_eq!(copied, 2);
    let rows = c.query("SELECT id, topic, body::text, n FROM facts ORDER BY id", &[]).await.unwrap();
    let got: Vec<(i64, String, Option<String>, i32)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    assert_eq!(got, [(1, "rain".into(), Some("{\"p\": 0.7}".into()), 7), (2, "sun".into(), None, 7)]);
    let changes: i64 = c.query_one("SELECT count(*) FROM changes(facts)", &[]).await.unwrap().get(0);
    assert_eq!(changes, 2);

    // A duplicate key or a NULL in a NOT NULL column anywhere: nothing of
    // that COPY is written.
    for (bad, code) in [("3\tfog\n1\tdup\n", "23505"), ("4\tok\n5\t\\N\n", "23502"), ("x\ty\n", "22P02")] {
        let e = copy_from_stdin(&c, "COPY facts (id, topic) FROM STDIN", bad.as_bytes(), usize::MAX).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some(code), "{bad:?}: {e:?}");
        let n: i64 = c.query_one("SELECT count(*) FROM facts", &[]).await.unwrap().get(0);
        assert_eq!(n, 2, "nothing of {bad:?} was written");
    }
    // Inside a transaction the rows are part of it.
    c.batch_execute("BEGIN").await.unwrap();
    copy_from_stdin(&c, "COPY facts (topic) FROM STDIN", b"in txn\n", usize::MAX).await.unwrap();
    let n: i64 = c.query_one("SELECT count(*) FROM facts", &[]).await.unwrap().get(0);
    assert_eq!(n, 3, "the transaction reads its own rows");
    c.batch_execute("ROLLBACK").await.unwrap();
    let n: i64 = c.query_one("SELECT count(*) FROM facts", &[]).await.unwrap().get(0);
    assert_eq!(n, 2);

    // From a file (JSON lines), and a view refuses.
    let file = dir.path().join("facts.jsonl");
    std::fs::write(&file, "{\"topic\": \"wind\", \"body\": {\"k\": [1]}, \"n\": 3}\n").unwrap();
    let copied = c.execute(&format!("COPY facts (topic, body, n) FROM '{}'", file.display()), &[]).await.unwrap();
    assert_eq!(copied, 1);
    let r = c.query_one("SELECT body::text, n FROM facts WHERE topic = 'wind'", &[]).await.unwrap();
    assert_eq!((r.get::<_, String>(0), r.get::<_, i32>(1)), ("{\"k\": [1]}".into(), 3));
    let e = c.execute(&format!("COPY topics FROM '{}'", file.display()), &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42809"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_backslash_copy_both_ways() {
    let (dir, server) = super::fresh();
    let c = server.client().await.unwrap();
    with_rows(&c, "src").await;
    c.batch_execute(&format!("CREATE STREAM back {CREATE}")).await.unwrap();
    let csv = dir.path().join("p.csv");
    let txt = dir.path().join("p.txt");
    let out = server
        .psql(&[
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("\\copy src to '{}' csv header", csv.display()),
            "-c",
            &format!("\\copy src to '{}'", txt.display()),
            "-c",
            &format!("\\copy back from '{}' csv header", csv.display()),
            "-c",
            &format!("\\copy back from '{}'", txt.display()),
        ])
        .unwrap();
    assert!(out.contains("COPY 5"), "{out}");
    let mut want: Vec<String> = dump(&c, "src").await.into_iter().flat_map(|r| [r.clone(), r]).collect();
    want.sort();
    let mut got = dump(&c, "back").await;
    got.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brikk_import_and_export_commands() {
    let (dir, server) = super::fresh();
    let c = server.client().await.unwrap();
    with_rows(&c, "src").await;
    c.batch_execute(&format!("CREATE STREAM imp {CREATE}")).await.unwrap();
    let port = server.addr.port().to_string();
    let run = |args: &[&str]| {
        let out = Command::new(brikk_bin()).args(args).args(["--port", &port]).output().unwrap();
        assert!(out.status.success(), "brikk {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for file in ["e.parquet", "e.csv", "e.jsonl"] {
        let path = dir.path().join(file);
        let p = path.to_str().unwrap();
        let said = run(&["export", p, "--stream", "src"]);
        assert!(said.contains("exported 5 rows"), "{said}");
        let said = run(&["import", p, "--stream", "imp"]);
        assert!(said.contains("imported 5 rows into imp"), "{said}");
    }
    let n: i64 = c.query_one("SELECT count(*) FROM imp", &[]).await.unwrap().get(0);
    assert_eq!(n, 15);
    // Into tables (`--table`), every type through every format.
    for (i, file) in ["e.parquet", "e.csv", "e.jsonl"].into_iter().enumerate() {
        let table = format!("imp_table_{i}");
        let columns = CREATE.replacen("id BIGINT NOT NULL", "id BIGINT PRIMARY KEY", 1);
        c.batch_execute(&format!("CREATE TABLE {table} {columns}")).await.unwrap();
        let said = run(&["import", dir.path().join(file).to_str().unwrap(), "--table", &table]);
        assert!(said.contains(&format!("imported 5 rows into {table}")), "{said}");
        assert_eq!(dump(&c, &table).await, dump(&c, "src").await, "{file}");
    }
    // A query, and a refused import that leaves the stream as it was.
    let q = dir.path().join("q.csv");
    run(&["export", q.to_str().unwrap(), "--query", "SELECT id FROM src WHERE id < 3"]);
    assert_eq!(std::fs::read_to_string(&q).unwrap().lines().count(), 2);
    let out = Command::new(brikk_bin())
        .args(["import", q.to_str().unwrap(), "--stream", "imp", "--port", &port])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was imported"));
    let n: i64 = c.query_one("SELECT count(*) FROM imp", &[]).await.unwrap().get(0);
    assert_eq!(n, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_files_import_back_with_copy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--archive-interval-ms", "50"]).unwrap();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM ev (n BIGINT, tag TEXT) WITH (archive = true, segment_rows = 100)").await.unwrap();
    super::archive::fill(&c, "ev", 0, 2, 50).await;
    super::archive::wait_for(&c, "SELECT count(*) FROM brikk_archive", 1).await;
    c.batch_execute("CREATE STREAM copy_of (n BIGINT, tag TEXT)").await.unwrap();
    let file = dir.path().join("archive/ev/0/0-99.parquet");
    let n = c.execute(&format!("COPY copy_of FROM '{}'", file.display()), &[]).await.unwrap();
    assert_eq!(n, 100, "system columns in the file are skipped");
}

/// A psql script with `COPY … FROM STDIN` and its data inline, in text and
/// CSV format: each block ends at its `\.` line, numeric values keep their
/// scale, and they are all there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_copy_data_in_a_psql_script_ends_at_backslash_dot() {
    let (dir, server) = super::fresh();
    let script = dir.path().join("load.sql");
    std::fs::write(
        &script,
        "CREATE STREAM pay (who TEXT, amount NUMERIC(10,3));\n\
         COPY pay FROM STDIN;\n\
         x\t1.5\n\
         y\t-2.0005\n\
         z\t\\N\n\
         \\.\n\
         COPY pay (who, amount) FROM STDIN WITH (FORMAT csv);\n\
         w,3e2\n\
         \"v, quoted\",0.0004\n\
         \\.\n\
         SELECT count(*) AS loaded FROM pay;\n",
    )
    .unwrap();
    let out = server.psql(&["-v", "ON_ERROR_STOP=1", "-f", &script.display().to_string()]).unwrap();
    assert!(out.contains("COPY 3") && out.contains("COPY 2"), "{out}");
    drop(server);
    let server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    let rows = c.simple_query("SELECT who, amount FROM pay ORDER BY who").await.unwrap();
    let got: Vec<String> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some(format!("{}={}", r.get(0).unwrap(), r.get(1).unwrap_or("NULL")))
            }
            _ => None,
        })
        .collect();
    assert_eq!(got, ["v, quoted=0.000", "w=300.000", "x=1.500", "y=-2.001", "z=NULL"]);
}
