//! moto's S3 server for tests, from `target/moto-venv` (`scripts/setup` installs
//! it): each test starts one of its own on a free port, killed when dropped.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_accelerator::store::objects::ObjectShards;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

/// A moto S3 server of this test's own; killed when dropped.
pub struct Moto {
    /// The server process.
    child: Child,
    /// `http://127.0.0.1:PORT`.
    endpoint: String,
}

impl Moto {
    /// Starts moto_server on a free port and waits until it accepts connections.
    pub fn start() -> Moto {
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/moto-venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: these tests need moto's S3 server. Run scripts/setup (or scripts/s3 install).",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup", bin.display()));
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("moto_server exited ({status}) before answering on port {port}");
            }
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not answer within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { child, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// Creates a bucket (moto takes an unsigned PUT for that).
    pub async fn bucket(&self, name: &str) {
        let answer = reqwest::Client::new().put(format!("{}/{name}", self.endpoint)).send().await.unwrap();
        assert!(answer.status().is_success(), "creating bucket {name}: {}", answer.status());
    }

    /// The `object_store` S3 options that point at this server.
    pub fn options(&self) -> [(&'static str, String); 5] {
        [
            ("aws_endpoint_url", self.endpoint.clone()),
            ("aws_allow_http", "true".into()),
            ("aws_region", "us-east-1".into()),
            ("aws_access_key_id", "test".into()),
            ("aws_secret_access_key", "test".into()),
        ]
    }

    /// A plain `object_store` client of `bucket`, no Coffer code in between.
    pub fn raw(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
        for (key, value) in self.options() {
            builder = builder.with_config(key.parse().unwrap(), value);
        }
        Arc::new(builder.build().unwrap())
    }

    /// Opens `s3://{bucket}/{prefix}` against this server through `ObjectShards`.
    pub async fn shards(&self, bucket: &str, prefix: &str) -> ObjectShards {
        self.bucket(bucket).await;
        ObjectShards::from_url_with(&format!("s3://{bucket}/{prefix}"), self.options()).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
