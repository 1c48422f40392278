//! Dates and times as Postgres reads and prints them: text without
//! seconds, the special values, PG's text output (fractions only when
//! there are some, offsets with their minutes), `::text`, COPY, and text
//! parameters.

use std::error::Error;

use brikk_tests::sqlstate;
use bytes::BytesMut;
use futures::TryStreamExt;
use tokio_postgres::types::{Format, IsNull, ToSql, Type};

use super::{fresh, texts};

/// A parameter sent as text, whatever type the server gave it (as
/// psycopg sends a `str`).
#[derive(Debug)]
struct Text(&'static str);

impl ToSql for Text {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    tokio_postgres::types::to_sql_checked!();
}

#[tokio::test]
async fn text_without_seconds_and_special_values_are_read() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute(
        "CREATE STREAM ev (id INT, at TIMESTAMPTZ, day DATE) WITH (partitions = 1);
         INSERT INTO ev VALUES (1, '2026-11-26 10:00', '2026-1-5');
         INSERT INTO ev VALUES (2, '2026-11-26 9:30+02', 'epoch');
         INSERT INTO ev VALUES (3, 'epoch', 'today')",
    )
    .await
    .unwrap();
    assert_eq!(
        texts(&c, "SELECT id, at, day FROM ev WHERE id < 3 ORDER BY id").await,
        ["1 | 2026-11-26 10:00:00+00 | 2026-01-05", "2 | 2026-11-26 07:30:00+00 | 1970-01-01"]
    );
    // In comparisons and casts; `today` is midnight of the session's zone.
    assert_eq!(texts(&c, "SELECT id FROM ev WHERE at >= '2026-11-26 08:00' ORDER BY id").await, ["1"]);
    assert_eq!(texts(&c, "SELECT id FROM ev WHERE day = 'today'::date").await, ["3"]);
    assert_eq!(texts(&c, "SELECT 'today'::timestamptz + interval '1 day' = 'tomorrow'::timestamptz").await, ["t"]);
    assert_eq!(texts(&c, "SELECT 'now'::timestamptz <= now() + interval '1 second'").await, ["t"]);

    // Text that is no date names itself, with 22P02; nothing is written
    // and the session goes on.
    for (sql, shown) in [
        ("INSERT INTO ev VALUES (4, '2026-11-26 25:00', NULL)", "2026-11-26 25:00"),
        ("SELECT '2026-13-01 10:00'::timestamptz", "2026-13-01 10:00"),
        ("SELECT id FROM ev WHERE at > 'soon'", "soon"),
    ] {
        let e = c.batch_execute(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&e).as_deref(), Some("22P02"), "{sql}: {e:?}");
        assert!(format!("{e:?}").contains(shown), "{sql}: {e:?}");
    }
    assert_eq!(texts(&c, "SELECT TRY_CAST('later' AS TIMESTAMP) IS NULL").await, ["t"]);
    assert_eq!(texts(&c, "SELECT count(*) FROM ev").await, ["3"]);

    // Text parameters too, in the session's zone.
    c.batch_execute("SET TIME ZONE 'Asia/Kolkata'").await.unwrap();
    let insert = c.prepare_typed("INSERT INTO ev VALUES (5, $1, $2)", &[Type::TIMESTAMPTZ, Type::DATE]).await.unwrap();
    c.execute(&insert, &[&Text("2026-11-26 10:00"), &Text("2026-1-5")]).await.unwrap();
    c.execute(&insert, &[&Text("2026-11-26 10:00:00"), &Text("yesterday")]).await.unwrap();
    assert_eq!(
        texts(&c, "SELECT at, day = 'yesterday'::date FROM ev WHERE id = 5 ORDER BY day").await,
        ["2026-11-26 10:00:00+05:30 | f", "2026-11-26 10:00:00+05:30 | t"]
    );
    let bad = c.execute(&insert, &[&Text("2026-11-26 10:7"), &Text("today")]).await.expect_err("bad parameter");
    assert_eq!(sqlstate(&bad).as_deref(), Some("22P02"), "{bad:?}");
}

#[tokio::test]
async fn timestamps_are_printed_as_postgres_prints_them() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute(
        "CREATE STREAM ev (name TEXT, at TIMESTAMPTZ, local TIMESTAMP);
         INSERT INTO ev VALUES ('a', '2026-11-26 10:00:00+00', '2026-11-26 10:00:00.25'),
                               ('b', '2026-11-26 10:00:00.000001+00', NULL)",
    )
    .await
    .unwrap();
    // Fraction digits only when there are some.
    assert_eq!(
        texts(&c, "SELECT name, at, local FROM ev ORDER BY name").await,
        ["a | 2026-11-26 10:00:00+00 | 2026-11-26 10:00:00.25", "b | 2026-11-26 10:00:00.000001+00 | NULL"]
    );
    // An offset that is not whole hours keeps its minutes: text clients
    // would otherwise read an instant half an hour off.
    c.batch_execute("SET TIME ZONE 'Asia/Kolkata'").await.unwrap();
    assert_eq!(texts(&c, "SELECT at FROM ev WHERE name = 'a'").await, ["2026-11-26 15:30:00+05:30"]);
    // Casts to text print the same (Arrow's would be ISO 8601 with a T).
    assert_eq!(
        texts(&c, "SELECT at::text, 'due ' || at, CAST(local AS TEXT) FROM ev WHERE name = 'a'").await,
        ["2026-11-26 15:30:00+05:30 | due 2026-11-26 15:30:00+05:30 | 2026-11-26 10:00:00.25"]
    );
    // Binary results carry the instant, as before.
    let at: std::time::SystemTime = c.query_one("SELECT at FROM ev WHERE name = 'a'", &[]).await.unwrap().get(0);
    assert_eq!(at, std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_687_200));
    // COPY TO writes the text SELECT shows, and reads it back.
    let copy = c.copy_out("COPY (SELECT name, at, local FROM ev ORDER BY name) TO STDOUT").await.unwrap();
    let lines: Vec<bytes::Bytes> = copy.try_collect().await.unwrap();
    let text = String::from_utf8(lines.concat()).unwrap();
    assert_eq!(
        text,
        "a\t2026-11-26 15:30:00+05:30\t2026-11-26 10:00:00.25\nb\t2026-11-26 15:30:00.000001+05:30\t\\N\n"
    );
    c.batch_execute("CREATE STREAM again (name TEXT, at TIMESTAMPTZ, local TIMESTAMP)").await.unwrap();
    brikk_tests::copy_from_stdin(&c, "COPY again FROM STDIN", text.as_bytes(), usize::MAX).await.unwrap();
    assert_eq!(
        texts(&c, "SELECT count(*) FROM again a JOIN ev e ON a.name = e.name AND a.at = e.at").await,
        ["2"],
        "COPY FROM reads what COPY TO wrote"
    );
}
