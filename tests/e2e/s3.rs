//! The archive at an `s3://` URL, against a real S3 endpoint: moto's server
//! (from PyPI, installed by `scripts/install-clients.sh --python`) on a
//! loopback port. Brikk reaches it through `object_store`'s AWS client,
//! configured from the standard `AWS_*` environment variables.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use brikk_tests::{clients_venv, install_python_clients, Server};

use super::archive::{fill, wait_for};

/// A `moto_server` child, killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Moto {
    let venv = install_python_clients().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(venv.join("bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting moto_server");
    let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

/// Runs boto3 against the endpoint: `script` sees `s3`, a client.
fn boto(endpoint: &str, script: &str) -> String {
    let program = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='{endpoint}', region_name='us-east-1', \
         aws_access_key_id='brikk', aws_secret_access_key='brikk')\n{script}"
    );
    let out = Command::new(clients_venv().join("bin/python")).arg("-c").arg(program).output().unwrap();
    assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_at_an_s3_url_lives_in_the_bucket() {
    let moto = start_moto();
    boto(&moto.endpoint, "s3.create_bucket(Bucket='lake')");
    let env = [
        ("AWS_ENDPOINT", moto.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "brikk"),
        ("AWS_SECRET_ACCESS_KEY", "brikk"),
        ("AWS_REGION", "us-east-1"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let start = || Server::start_with_env(dir.path(), &["--archive-interval-ms", "50"], &env).unwrap();
    let mut server = start();
    let c = server.client().await.unwrap();
    c.batch_execute(
        "CREATE STREAM ev (n BIGINT, tag TEXT) WITH (partitions = 2, archive = 's3://lake/agents', segment_rows = 100)",
    )
    .await
    .unwrap();
    // Each partition gets 200 rows: two sealed segments of 100 each.
    fill(&c, "ev", 0, 8, 50).await;
    wait_for(&c, "SELECT count(*) FROM brikk_archive WHERE stream = 'ev'", 4).await;
    let keys = boto(
        &moto.endpoint,
        "for o in sorted(s3.list_objects_v2(Bucket='lake')['Contents'], key=lambda o: o['Key']): print(o['Key'])",
    );
    assert_eq!(
        keys.lines().collect::<Vec<_>>(),
        [
            "agents/ev/0/0-99.parquet",
            "agents/ev/0/100-199.parquet",
            "agents/ev/1/0-99.parquet",
            "agents/ev/1/100-199.parquet"
        ]
    );
    assert!(!dir.path().join("archive/ev").exists(), "nothing archived under the data directory");
    let loc: String = c.query_one("SELECT DISTINCT location FROM brikk_archive", &[]).await.unwrap().get(0);
    assert_eq!(loc, "s3://lake/agents");
    let live: i64 = c
        .query_one("SELECT CAST(sum(live_start_offset) AS BIGINT) FROM brikk_partitions WHERE stream = 'ev'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 400, "the archived ranges left RocksDB");

    // After a crash the rows are read back from the bucket.
    drop(c);
    server.kill9();
    let server = start();
    let c = server.client().await.unwrap();
    let r = c.query_one("SELECT count(*), count(DISTINCT n), CAST(sum(n) AS BIGINT) FROM ev", &[]).await.unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)), (400, 400, (0..400).sum::<i64>()));

    // A file gone from the bucket is an error naming it, never fewer rows.
    boto(&moto.endpoint, "s3.delete_object(Bucket='lake', Key='agents/ev/1/0-99.parquet')");
    let err = c.query_one("SELECT count(*) FROM ev", &[]).await.unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "58P01", "{db:?}");
    assert!(db.message().contains("agents/ev/1/0-99.parquet"), "{}", db.message());
}
