//! psql: the walkthrough from README.md, and its meta-commands.

use super::fresh;

#[test]
fn readme_walkthrough_with_psql() {
    let (_dir, server) = fresh();
    let out = server
        .psql(&[
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "CREATE STREAM tasks (task_id TEXT, kind TEXT, payload TEXT) WITH (partitions = 8, key = 'task_id')",
            "-c",
            "INSERT INTO tasks VALUES ('t1', 'summarize', '{\"doc\": 17}'), ('t2', 'plan', 'x')",
            "-c",
            "SELECT _partition, _offset, _key, * FROM tasks ORDER BY task_id",
            "-c",
            "SHOW STREAMS",
        ])
        .unwrap();
    assert!(out.contains("INSERT 0 2"), "{out}");
    assert!(out.contains("| summarize | {\"doc\": 17}"), "{out}");
    assert!(out.contains("tasks | "), "{out}");

    let d = server.psql(&["-c", "\\d tasks"]).unwrap();
    for col in ["_partition", "_offset", "_timestamp", "task_id", "kind", "payload"] {
        assert!(d.contains(col), "\\d tasks shows {col}:\n{d}");
    }
    let dt = server.psql(&["-c", "\\dt"]).unwrap();
    assert!(dt.contains("tasks"), "\\dt lists the stream:\n{dt}");

    // Errors come back as psql prints them, and the session goes on.
    let err = server.psql(&["-v", "ON_ERROR_STOP=1", "-c", "SELECT * FROM nope"]).unwrap_err().to_string();
    assert!(err.contains("relation \"nope\" does not exist"), "{err}");
    let err =
        server.psql(&["-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-c", "SELECT 1/0"]).unwrap_err().to_string();
    assert!(err.contains("22012"), "{err}");
}

#[test]
fn psql_script_with_transaction_and_multi_row_inserts() {
    let (dir, server) = fresh();
    let script = dir.path().join("script.sql");
    std::fs::write(
        &script,
        "CREATE STREAM ev (n BIGINT, note TEXT) WITH (partitions = 2);\n\
         BEGIN;\n\
         INSERT INTO ev VALUES (1, 'a'), (2, 'b');\n\
         INSERT INTO ev SELECT n + 10, note FROM ev;\n\
         COMMIT;\n\
         SELECT count(*) AS total, sum(n) AS s FROM ev;\n",
    )
    .unwrap();
    let out = server.psql(&["-v", "ON_ERROR_STOP=1", "-f", script.to_str().unwrap()]).unwrap();
    // Reads inside the transaction see committed data only, so the
    // INSERT … SELECT copied nothing.
    assert!(out.contains("     2 |"), "{out}");
}
