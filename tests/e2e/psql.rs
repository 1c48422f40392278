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
            "INSERT INTO tasks VALUES ('t3', 'review', '{}') RETURNING _partition, _offset",
            "-c",
            "SELECT _partition, _offset, _key, * FROM tasks ORDER BY task_id",
            "-c",
            "SHOW STREAMS",
        ])
        .unwrap();
    assert!(out.contains("INSERT 0 2"), "{out}");
    // t3's place: its key's partition, after the records already there.
    let partition = |key: &[u8]| brikk_storage::log::partition_for_key(key, 8);
    let t3 = partition(b"t3");
    let offset = [b"t1", b"t2"].iter().filter(|k| partition(k.as_slice()) == t3).count();
    let returned = format!(" _partition | _offset \n------------+---------\n {t3:>10} | {offset:>7}\n");
    assert!(out.contains(&returned), "{out}");
    assert!(out.contains("| summarize | {\"doc\": 17}"), "{out}");
    assert!(out.contains("tasks | "), "{out}");

    let d = server.psql(&["-c", "\\d tasks"]).unwrap();
    for col in ["_partition", "_offset", "_timestamp", "task_id", "kind", "payload"] {
        assert!(d.contains(col), "\\d tasks shows {col}:\n{d}");
    }
    let dt = server.psql(&["-c", "\\dt"]).unwrap();
    assert!(dt.contains("tasks"), "\\dt lists the stream:\n{dt}");
    let df = server.psql(&["-v", "ON_ERROR_STOP=1", "-c", "\\df"]).unwrap();
    assert!(df.contains("List of functions"), "\\df runs (no user functions):\n{df}");
    let du = server.psql(&["-v", "ON_ERROR_STOP=1", "-c", "\\du"]).unwrap();
    assert!(du.contains(" brikk "), "\\du lists the one role:\n{du}");
    // Listings of what Brikk has none of (or only Postgres' own) run too.
    let listings = [
        ("\\dT", "List of data types"),
        ("\\dD", "List of domains"),
        ("\\do", "List of operators"),
        ("\\dc", "List of conversions"),
        ("\\dC", "List of casts"),
        ("\\dF", "List of text search configurations"),
        ("\\db", "pg_default"),
        ("\\dn+", "Access privileges"),
        ("\\dT+", "Access privileges"),
        ("\\dconfig", "application_name"),
    ];
    for (cmd, title) in listings {
        let out = server.psql(&["-v", "ON_ERROR_STOP=1", "-c", cmd]).unwrap();
        assert!(out.contains(title), "{cmd}:\n{out}");
    }

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

#[test]
fn meta_commands_describe_streams_tables_and_the_connection() {
    let (_dir, server) = fresh();
    server
        .psql(&[
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "CREATE STREAM tasks (task_id TEXT NOT NULL, kind TEXT, n BIGINT) \
             WITH (partitions = 8, key = 'task_id', retention = '7 days')",
            "-c",
            "CREATE STREAM plain (note TEXT)",
            "-c",
            "CREATE TABLE board (topic TEXT PRIMARY KEY, fact JSONB, version BIGINT NOT NULL)",
            "-c",
            "CREATE TABLE jobs (id BIGSERIAL PRIMARY KEY, lane INT GENERATED ALWAYS AS IDENTITY, note TEXT DEFAULT 'todo', \
             at TIMESTAMPTZ DEFAULT now(), price NUMERIC(10,2))",
        ])
        .unwrap();
    let psql = |cmd: &str| server.psql(&["-v", "ON_ERROR_STOP=1", "-c", cmd]).unwrap();

    // \d+: columns with psql's verbose columns, and the stream's options.
    let d = psql("\\d+ tasks");
    assert!(d.contains("Table \"public.tasks\""), "{d}");
    assert!(d.contains("Storage") && d.contains("Description"), "verbose columns:\n{d}");
    let row = |name: &str| d.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or_default().to_string();
    assert!(row("_offset").contains("bigint") && row("_offset").contains("not null"), "{d}");
    assert!(row("task_id").contains("text") && row("task_id").contains("not null"), "{d}");
    assert!(row("n ").contains("bigint"), "{d}");
    assert!(d.contains("Options: partitions=8, key=task_id, retention=7 days"), "{d}");
    assert!(psql("\\d+ plain").contains("Options: partitions=1\n"), "an unkeyed stream without retention");
    let b = psql("\\d+ board");
    assert!(b.contains("Table \"public.board\"") && b.contains("Options: changelog=board$changes"), "{b}");
    let fact = b.lines().find(|l| l.trim_start().starts_with("fact ")).unwrap_or_default();
    assert!(fact.contains("| jsonb "), "JSON columns keep their type: {fact}");
    // A table's primary key is listed as its index; a stream has none.
    assert!(b.contains("Indexes:\n    \"board_pkey\" PRIMARY KEY, btree (topic)\n"), "{b}");
    assert!(!d.contains("Indexes:"), "{d}");
    let di = psql("\\di");
    let index = di.lines().find(|l| l.contains(" board_pkey ")).unwrap_or_else(|| panic!("\\di:\n{di}"));
    assert!(index.contains("| index ") && index.contains("| board"), "{index}");
    assert!(!psql("\\dt").contains("board_pkey"), "\\dt lists no index");
    let pkey = psql("\\d board_pkey");
    assert!(pkey.contains("Index \"public.board_pkey\""), "{pkey}");
    assert!(pkey.contains(" topic  | text | yes  | topic\n"), "{pkey}");
    assert!(pkey.contains("primary key, btree, for table \"public.board\""), "{pkey}");
    let jobs = psql("\\d jobs");
    let line = |name: &str| jobs.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or_default().to_string();
    assert!(line("id ").contains("not null") && line("id ").contains("generated by default as identity"), "{jobs}");
    assert!(line("lane ").contains("generated always as identity"), "{jobs}");
    // Defaults as written, and numeric with its precision and scale.
    assert!(line("note ").contains("| 'todo'"), "{jobs}");
    assert!(line("at ").contains("| now()"), "{jobs}");
    assert!(line("price ").contains("numeric(10,2)"), "{jobs}");

    // \dv lists views; \d+ of one shows its columns and definition.
    psql("CREATE VIEW long_tasks AS SELECT task_id, n FROM tasks WHERE n > 100");
    assert!(psql("\\dv").contains(" long_tasks "), "\\dv lists the view");
    let v = psql("\\d+ long_tasks");
    assert!(v.contains("View \"public.long_tasks\""), "{v}");
    assert!(v.contains("View definition:\n SELECT task_id, n FROM tasks WHERE n > 100;"), "{v}");

    // \d and \dt list streams and tables (owned by brikk, the one role);
    // Brikk's system tables are with Postgres' catalogs, listed by \dtS.
    for cmd in ["\\d", "\\dt"] {
        let list = psql(cmd);
        for name in ["tasks", "plain", "board"] {
            let line =
                list.lines().find(|l| l.contains(&format!(" {name} "))).unwrap_or_else(|| panic!("{cmd}:\n{list}"));
            assert!(line.contains("| brikk"), "owner of {name}: {line}");
        }
        assert!(!list.contains("brikk_"), "{cmd} lists no system table:\n{list}");
    }
    let system = psql("\\dtS brikk_*");
    for name in brikk_query::catalog::system::NAMES {
        let line = system.lines().find(|l| l.contains(&format!(" {name} "))).unwrap_or_else(|| panic!("{system}"));
        assert!(line.trim_start().starts_with("pg_catalog |"), "{line}");
    }
    let d = psql("\\d+ brikk_groups");
    assert!(d.contains("Table \"pg_catalog.brikk_groups\"") && !d.contains("Replica Identity"), "{d}");

    // \l: the one database.
    let l = psql("\\l");
    assert!(l.lines().any(|line| line.trim_start().starts_with("brikk ") && line.contains("| brikk ")), "{l}");
    assert!(l.contains("(1 row)"), "only brikk:\n{l}");

    // \conninfo
    let info = psql("\\conninfo");
    assert_eq!(
        info.trim(),
        format!(
            "You are connected to database \"brikk\" as user \"brikk\" on host \"{}\" at port \"{}\".",
            server.addr.ip(),
            server.addr.port()
        )
    );
}

/// `\dt+` and `\l+` show sizes: each relation's own data (in memtables
/// until flushed) and the data directory's files; the size functions take an
/// oid or a name and print as Postgres prints them.
#[test]
fn sizes_of_relations_and_the_database() {
    let (_dir, server) = fresh();
    let psql = |cmd: &str| server.psql(&["-v", "ON_ERROR_STOP=1", "-c", cmd]).unwrap();
    psql("CREATE TABLE board (topic TEXT PRIMARY KEY, fact TEXT)");
    psql("CREATE STREAM events (note TEXT) WITH (partitions = 2)");
    psql("CREATE TABLE empty (k BIGINT PRIMARY KEY)");
    psql("INSERT INTO board SELECT 'k' || v, repeat('x', 100) FROM generate_series(1, 20000) t(v)");
    psql("INSERT INTO events SELECT 'e' || v FROM generate_series(1, 20000) t(v)");

    let dt = psql("\\dt+");
    let size = |name: &str| {
        let line = dt.lines().find(|l| l.contains(&format!(" {name} "))).unwrap_or_else(|| panic!("\\dt+:\n{dt}"));
        line.split('|').nth(6).unwrap_or_default().trim().to_string()
    };
    // ≈2.2 MB of rows, ≈0.3 MB of records: sizes in kB or MB, not 0.
    for name in ["board", "events"] {
        assert!(size(name).ends_with(" kB") || size(name).ends_with(" MB"), "{name}: {}\n{dt}", size(name));
    }
    assert_eq!(size("empty"), "0 bytes", "{dt}");

    let one = |sql: &str| server.psql(&["-v", "ON_ERROR_STOP=1", "-At", "-c", sql]).unwrap().trim().to_string();
    let board: i64 = one("SELECT pg_table_size('board')").parse().unwrap();
    // ≈2.2 MB of rows, still in the memtable: RocksDB estimates it roughly.
    assert!((300_000..20_000_000).contains(&board), "board: {board} bytes");
    // By oid as by name; the other functions agree; other forks are empty.
    assert_eq!(one("SELECT pg_relation_size(oid) FROM pg_class WHERE relname = 'board'"), board.to_string());
    assert_eq!(one("SELECT pg_total_relation_size('board'::regclass)"), board.to_string());
    assert_eq!(one("SELECT pg_relation_size('board', 'fsm')"), "0");
    // An index (the table is its primary key's index) and a catalog table
    // take no space of their own; an oid no relation has is NULL.
    assert_eq!(one("SELECT pg_relation_size(oid) FROM pg_class WHERE relname = 'board_pkey'"), "0");
    assert_eq!(one("SELECT pg_table_size(999999) IS NULL"), "t");
    let db: i64 = one("SELECT pg_database_size('brikk')").parse().unwrap();
    assert!(db > board, "database {db} bytes, board {board}");
    // A name that names nothing is an error, as in Postgres.
    let fails = |sql: &str, code: &str| {
        let err =
            server.psql(&["-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-c", sql]).unwrap_err().to_string();
        assert!(err.contains(code), "{sql}: {err}");
    };
    fails("SELECT pg_database_size('other')", "3D000");
    fails("SELECT pg_table_size('nothing')", "42P01");
    fails("SELECT pg_relation_size('board', 'heap')", "22023");
    assert_eq!(one("SELECT pg_table_size('brikk_streams') + pg_table_size('board_pkey')"), "0");
    assert!(psql("\\l+").contains("| brikk |"), "\\l+ runs");
    assert_eq!(
        one("SELECT pg_size_pretty(10485248) || ', ' || pg_size_pretty(-10240) || ', ' || pg_size_pretty(0)"),
        "10 MB, -10 kB, 0 bytes"
    );
    let err = server.psql(&["-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-c", "SELECT pg_size_pretty('abc')"]);
    let err = err.unwrap_err().to_string();
    assert!(err.contains("42883") && err.contains("pg_size_pretty(text)"), "{err}");
}

#[test]
fn notices_and_warnings_reach_psql_with_their_sqlstate() {
    let (dir, server) = fresh();
    let script = "CREATE TABLE t (id INT PRIMARY KEY);\n\
                  CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY);\n\
                  CREATE STREAM IF NOT EXISTS s (x TEXT);\n\
                  CREATE STREAM IF NOT EXISTS s (x TEXT);\n\
                  DROP TABLE IF EXISTS nope;\n\
                  DROP STREAM IF EXISTS nope_either;\n\
                  COMMIT;\n\
                  ROLLBACK;\n\
                  SET LOCAL TimeZone = 'Europe/Paris';\n\
                  SHOW TimeZone;\n\
                  BEGIN;\n\
                  BEGIN;\n\
                  INSERT INTO s VALUES ('kept');\n\
                  CREATE TABLE u (id INT PRIMARY KEY);\n\
                  INSERT INTO u VALUES (1);\n\
                  COMMIT;\n\
                  SELECT count(*) AS n FROM s;\n\
                  INSERT INTO s VALUES ('implicit'); COMMIT;\n";
    let file = dir.path().join("notices.sql");
    std::fs::write(&file, script).unwrap();
    let out = server
        .psql_command(&["-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-f", file.to_str().unwrap()])
        .output()
        .expect("running psql");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "NOTICE:  42P07: relation \"t\" already exists, skipping",
        "NOTICE:  42P07: relation \"s\" already exists, skipping",
        "NOTICE:  00000: table \"nope\" does not exist, skipping",
        "NOTICE:  00000: stream \"nope_either\" does not exist, skipping",
        "WARNING:  25P01: SET LOCAL can only be used in transaction blocks",
        "WARNING:  25001: there is already a transaction in progress",
        "WARNING:  01000: CREATE TABLE is not transactional: it took effect now, and ROLLBACK will not undo it",
    ] {
        assert_eq!(stderr.matches(expected).count(), 1, "{expected:?} once in:\n{stderr}");
    }
    // COMMIT and ROLLBACK outside a transaction: one warning each; and
    // COMMIT ending the implicit transaction of a multi-statement string
    // commits it and warns too, as in Postgres.
    assert_eq!(stderr.matches("WARNING:  25P01: there is no transaction in progress").count(), 3, "{stderr}");
    // The first CREATE STREAM IF NOT EXISTS created it: no notice for it.
    assert_eq!(stderr.matches("NOTICE").count(), 4, "{stderr}");
    // Notices change nothing else: SET LOCAL did nothing, the nested BEGIN's
    // transaction committed.
    assert!(stdout.contains(" UTC"), "{stdout}");
    assert!(stdout.contains(" 1\n"), "{stdout}");
    let n = server.psql(&["-t", "-c", "SELECT count(*) FROM s"]).unwrap();
    assert_eq!(n.trim(), "2", "the implicit transaction committed");
}
