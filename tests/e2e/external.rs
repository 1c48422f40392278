//! The archive is an open format: DuckDB, pyarrow and pandas read the
//! files directly and get the rows Brikk returns for the same offsets.
//! Installs its Python packages with `scripts/install-clients.sh --python`.

use std::path::PathBuf;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_pyarrow_and_pandas_read_the_archive() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let venv = brikk_tests::install_python_clients().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let server = super::archive::archiving(dir.path());
    let c = server.client().await.unwrap();
    c.batch_execute(
        "CREATE STREAM obs (id BIGINT NOT NULL, who TEXT, v DOUBLE PRECISION, r REAL, ok BOOLEAN, \
         at TIMESTAMPTZ, local_at TIMESTAMP, day DATE, small SMALLINT, mid INTEGER, raw BYTEA) \
         WITH (partitions = 3, key = 'who', archive = true, segment_rows = 60)",
    )
    .await
    .unwrap();
    for b in 0..10 {
        let sql = format!(
            "INSERT INTO obs SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE 'agent-' || (i % 5) END, i * 1.25, \
             CASE WHEN i % 2 = 0 THEN -2.5 ELSE NULL END, i % 3 = 0, \
             to_timestamp(1700000000 + i * 3600), CAST(to_timestamp(1700000000 + i) AS TIMESTAMP), \
             CAST('2026-01-01' AS DATE) + CAST(i AS INT), CAST(i % 100 AS SMALLINT), CAST(i * 7 AS INT), \
             CAST('x' || i AS BYTEA) FROM generate_series({}, {}) AS t(i)",
            b * 40,
            b * 40 + 39
        );
        c.batch_execute(&sql).await.unwrap();
    }
    super::archive::wait_for(&c, "SELECT CAST(count(*) > 3 AS BIGINT) FROM brikk_archive WHERE stream = 'obs'", 1)
        .await;
    // Brikk's rows for exactly the archived offsets, as JSON lines.
    let expected = dir.path().join("expected.jsonl");
    let (mut conds, mut files) = (Vec::new(), Vec::new());
    let listed =
        "SELECT partition, first_offset, last_offset, location || '/' || path FROM brikk_archive WHERE stream = 'obs'";
    for r in c.query(listed, &[]).await.unwrap() {
        files.push(r.get::<_, String>(3));
        conds.push(format!(
            "(_partition = {} AND _offset BETWEEN {} AND {})",
            r.get::<_, i32>(0),
            r.get::<_, i64>(1),
            r.get::<_, i64>(2)
        ));
    }
    let sql = format!(
        "COPY (SELECT _partition, _offset, _timestamp, _key, * FROM obs WHERE {} ORDER BY _partition, _offset) TO '{}'",
        conds.join(" OR "),
        expected.display()
    );
    let n = c.execute(&sql, &[]).await.unwrap();
    assert!(n >= 180, "{n} archived rows");
    let out = Command::new(venv.join("bin/python"))
        .arg(root.join("tests/clients/python/archive_readers.py"))
        .arg(&expected)
        .args(&files)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    for reader in ["duckdb", "pyarrow", "pandas"] {
        assert!(said.contains(&format!("PASS {reader}: {n} rows")), "{said}");
    }
}
