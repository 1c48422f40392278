//! The session's `TimeZone`: checked when set, reported at start-up, and
//! applied to `timestamptz` values shown and read as text.

use std::time::{Duration, SystemTime};

use brikk_tests::{connect, sqlstate};
use futures::TryStreamExt;

use super::{fresh, texts};

#[tokio::test]
async fn timestamptz_is_shown_and_read_in_the_session_zone() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute(
        "CREATE STREAM events (name TEXT, at TIMESTAMPTZ, local TIMESTAMP);
         INSERT INTO events VALUES ('noon', '2026-01-01 12:00:00+00', '2026-01-01 12:00:00')",
    )
    .await
    .unwrap();
    assert_eq!(texts(&c, "SHOW TIME ZONE").await, ["UTC"]);
    let shown = c.query_one("SHOW timezone", &[]).await.unwrap();
    assert_eq!(shown.columns()[0].name(), "TimeZone", "named as Postgres names it");
    assert_eq!(texts(&c, "SELECT at FROM events").await, ["2026-01-01 12:00:00+00"]);

    c.batch_execute("SET TIME ZONE 'asia/tokyo'").await.unwrap();
    assert_eq!(texts(&c, "SHOW timezone").await, ["Asia/Tokyo"]);
    // The same instant, shown as Tokyo time; a plain timestamp is unchanged.
    assert_eq!(texts(&c, "SELECT at FROM events").await, ["2026-01-01 21:00:00+09"]);
    assert_eq!(texts(&c, "SELECT local FROM events").await, ["2026-01-01 12:00:00"]);
    // Text without an offset is a Tokyo time: in a cast, an INSERT, COPY.
    assert_eq!(texts(&c, "SELECT '2026-01-01 09:00:00'::timestamptz").await, ["2026-01-01 09:00:00+09"]);
    c.batch_execute("INSERT INTO events (name, at) VALUES ('tokyo nine', '2026-01-01 09:00:00')").await.unwrap();
    // Comparisons with text, and fields of stored columns, are in Tokyo.
    assert_eq!(texts(&c, "SELECT name FROM events WHERE at = '2026-01-01 09:00:00'").await, ["tokyo nine"]);
    assert_eq!(
        texts(&c, "SELECT extract(hour FROM at)::text || ' ' || date_trunc('day', at)::text FROM events ORDER BY at")
            .await,
        ["9 2026-01-01 00:00:00+09", "21 2026-01-01 00:00:00+09"]
    );
    // A range on _timestamp is still a range scan.
    let plan = texts(&c, "EXPLAIN SELECT name FROM events WHERE _timestamp >= '2026-01-01 09:00:00'").await;
    assert!(plan.iter().any(|p| p.contains("partial_filters=[events._timestamp >=")), "{plan:?}");
    c.batch_execute("SET TIME ZONE -7").await.unwrap();
    assert_eq!(
        texts(&c, "SELECT at FROM events WHERE name = 'tokyo nine'").await,
        ["2025-12-31 17:00:00-07"],
        "09:00 in Tokyo is 00:00 UTC, 17:00 the day before at UTC-7"
    );

    // COPY TO writes the zone's local times too.
    let copy = c.copy_out("COPY (SELECT at FROM events WHERE name = 'noon') TO STDOUT").await.unwrap();
    let lines: Vec<bytes::Bytes> = copy.try_collect().await.unwrap();
    assert_eq!(lines.concat(), b"2026-01-01 05:00:00-07\n");

    // Prepared statements too: a literal cast.
    let cast = "SELECT name FROM events WHERE at = '2025-12-31 17:00:00'::timestamptz";
    let got = c.query(cast, &[]).await.unwrap();
    assert_eq!(got.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(), ["tokyo nine"]);
    // (Text parameters read in the zone: tests/clients/python/psycopg3_client.py.)

    // Binary results carry the instant, whatever the zone.
    let row = c.query_one("SELECT at FROM events WHERE name = 'noon'", &[]).await.unwrap();
    let at: SystemTime = row.get(0);
    assert_eq!(at, SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_268_800));

    // Tables too: upserted text is read in the zone, shown in it.
    c.batch_execute(
        "SET TIME ZONE 'Europe/Berlin';
         CREATE TABLE deadlines (task TEXT PRIMARY KEY, due TIMESTAMPTZ);
         INSERT INTO deadlines VALUES ('a', '2026-07-01 18:00:00')",
    )
    .await
    .unwrap();
    assert_eq!(texts(&c, "SELECT due FROM deadlines").await, ["2026-07-01 18:00:00+02"]);
    // The WHERE of UPDATE and DELETE, and ON CONFLICT's, compare in Berlin.
    assert_eq!(
        texts(&c, "UPDATE deadlines SET due = due + interval '1 hour' WHERE due = '2026-07-01 18:00:00' RETURNING due")
            .await,
        ["2026-07-01 19:00:00+02"]
    );
    let upsert = "INSERT INTO deadlines VALUES ('a', '2026-07-02 09:00:00') ON CONFLICT (task) \
                  DO UPDATE SET due = excluded.due WHERE deadlines.due < '2026-07-01 19:30:00' RETURNING due";
    assert_eq!(texts(&c, upsert).await, ["2026-07-02 09:00:00+02"]);
    assert_eq!(texts(&c, "DELETE FROM deadlines WHERE due > '2026-07-02 08:30:00' RETURNING task").await, ["a"]);
    c.batch_execute("INSERT INTO deadlines VALUES ('a', '2026-07-01 18:00:00')").await.unwrap();
    c.batch_execute("SET TIME ZONE DEFAULT").await.unwrap();
    assert_eq!(texts(&c, "SELECT due FROM deadlines").await, ["2026-07-01 16:00:00+00"]);
}

#[tokio::test]
async fn an_unknown_zone_is_refused_and_changes_nothing() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute("SET TIME ZONE 'Europe/Paris'").await.unwrap();
    for bad in ["SET TIME ZONE 'Mars/Olympus'", "SET timezone = '+03:00'", "SET TimeZone TO 'nowhere'"] {
        let e = c.batch_execute(bad).await.expect_err(bad);
        assert_eq!(sqlstate(&e).as_deref(), Some("22023"), "{bad}: {e:?}");
    }
    assert_eq!(texts(&c, "SHOW TIME ZONE").await, ["Europe/Paris"], "the session is usable and unchanged");
}

#[tokio::test]
async fn the_start_up_zone_is_applied_and_reported() {
    let (_dir, server) = fresh();
    let conn_str = format!("{} options='-c TimeZone=America/New_York'", server.conn_str());
    let c = connect(&conn_str).await.unwrap();
    assert_eq!(texts(&c, "SHOW TIME ZONE").await, ["America/New_York"]);
    assert_eq!(texts(&c, "SELECT TIMESTAMPTZ '2026-01-01 12:00:00+00'").await, ["2026-01-01 07:00:00-05"]);
    // RESET, in each spelling, returns to the start-up zone, not to UTC.
    for reset in ["RESET TIME ZONE", "RESET timezone", "SET TIME ZONE DEFAULT", "RESET ALL"] {
        c.batch_execute("SET TIME ZONE 'Asia/Tokyo'").await.unwrap();
        c.batch_execute(reset).await.unwrap_or_else(|e| panic!("{reset}: {e}"));
        assert_eq!(texts(&c, "SHOW TIME ZONE").await, ["America/New_York"], "{reset}");
    }

    // Hours east of UTC, as libpq passes them.
    let hours = format!("{} options='-c TimeZone=5.5'", server.conn_str());
    let c = connect(&hours).await.unwrap();
    assert_eq!(texts(&c, "SHOW TIME ZONE").await, ["+05:30"]);

    // A zone Brikk does not know ends start-up with 22023.
    let bad = format!("{} options='-c TimeZone=Mars/Olympus'", server.conn_str());
    let e = connect(&bad).await.expect_err("unknown start-up zone");
    let db = e.downcast_ref::<tokio_postgres::Error>().expect("a server error");
    assert_eq!(sqlstate(db).as_deref(), Some("22023"), "{db:?}");
}
