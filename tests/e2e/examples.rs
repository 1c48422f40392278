//! Every script in `sql-examples/` runs with psql against a fresh server,
//! stops at no error, and ends with the state the script promises.

use std::path::PathBuf;

use super::fresh;

fn run(script: &str) -> String {
    let (_dir, server) = fresh();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sql-examples").join(script);
    let out = server
        .psql(&["-v", "ON_ERROR_STOP=1", "-f", path.to_str().expect("utf-8 path")])
        .unwrap_or_else(|e| panic!("{script} failed: {e}"));
    // Collapse psql's table padding so checks read like the rows.
    out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
}

#[test]
fn orchestrator_worker() {
    let out = run("orchestrator_worker.sql");
    for row in [
        "t1 | QUARTERLY REPORT",
        "t2 | HELLO WORLD",
        "t3 | MEETING NOTES",
        "t4 | SUPPORT TICKET 81",
        "(4 rows)",
        "COMMIT OFFSETS 1",
        "ACK 1",
    ] {
        assert!(out.contains(row), "missing {row:?} in:\n{out}");
    }
    assert!(!out.contains("never seen"), "a rolled-back result became visible:\n{out}");
}

#[test]
fn hierarchical() {
    let out = run("hierarchical.sql");
    for row in [
        "g1 | lead | lead-research | split into 2 steps",
        "g1 | worker | researcher-1 | sources collected, features compared",
        "g2 | lead | lead-writing | split into 3 steps",
        "g2 | worker | writer-1 | outlined, drafted, edited",
        "leads | 0",
        "researchers | 0",
        "writers | 0",
    ] {
        assert!(out.contains(row), "missing {row:?} in:\n{out}");
    }
}

#[test]
fn blackboard() {
    let out = run("blackboard.sql");
    for row in [
        // The second CAS on the same version changed nothing.
        "UPDATE 1\nUPDATE 0",
        "cause | 0.8",
        "6 | update | fix | planner | 2",
        // The group's second FETCH: only the change after its commit.
        "0 | 7 |",
        "| impact | update | impact | p99 triples |",
        "cause | the cache is cold after deploys | 1",
        "impact | p99 triples | 2",
        "cause | a connection pool is exhausted | researcher | 3",
        "fix | raise the pool size | planner | 2",
        "fix | raise pool size to 64",
        // jsonb_set and || revised one field and added another.
        r#"impact | {"signals": ["p99", "errors"], "confidence": 0.9, "reviewed_by": "researcher"} | 4"#,
        // The board as one JSON document, in topic order.
        r#"[{"confidence":0.8,"hypothesis":"a connection pool is exhausted","topic":"cause"},{"confidence":0.2,"#,
        r#""topic":"fix"},{"confidence":0.9,"hypothesis":"p99 triples","topic":"impact"}]"#,
        // Each cited signal, from the evidence arrays.
        "latency | 1\np99 | 1\npool wait | 1\n(4 rows)",
        // After ALTER and UPDATE … FROM, the view lists what is still open.
        "cause | a connection pool is exhausted | researcher\nimpact | p99 triples | critic\n(2 rows)",
    ] {
        assert!(out.contains(row), "missing {row:?} in:\n{out}");
    }
    assert!(!out.contains("disk is slow"), "the losing CAS was applied:\n{out}");
}

#[test]
fn market() {
    let out = run("market.sql");
    for row in [
        // bid-1 fills from the cheapest ask up, within its budget.
        "| bid-1 | ask-2 | 1 | 6 | 0 | 1",
        "| bid-1 | ask-1 | 2 | 8 | 0 | 0",
        "ask | translate | 12 | 5 | 1",
        // The cancelled and the expired bids never trade or rest.
        "| bid-4 | ask-1 | 1 | 8 | 3 | 0",
        "ask | summarize | 3 | 1 | 1",
        "bid-4 | ask-1 | 1 | 8\n(3 rows)",
        "market | running | bids, asks, cancels | 0 | 10 | 3",
    ] {
        assert!(out.contains(row), "missing {row:?} in:\n{out}");
    }
    assert!(!out.contains("bid-2 |") && !out.contains("bid-3 |"), "a cancelled or expired bid traded:\n{out}");
    assert!(!out.lines().any(|l| l.starts_with("bid |")), "a bid was left in the book:\n{out}");
}
