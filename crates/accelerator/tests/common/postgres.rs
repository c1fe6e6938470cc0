//! A PostgreSQL database of a test's own on the test server (`COFFER_TEST_POSTGRES`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`; `scripts/test` sets it),
//! created empty and dropped when the test is done, even when it fails.
#![allow(dead_code)]

use tokio_postgres::NoTls;

/// The server tests use, as an admin URL (its database is where others are made).
pub fn server_url() -> String {
    std::env::var("COFFER_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A connection to the server's admin database.
pub async fn admin() -> tokio_postgres::Client {
    let url = server_url();
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap_or_else(|e| {
        panic!("connect to PostgreSQL at {url}: {e}; run scripts/setup, or set COFFER_TEST_POSTGRES")
    });
    tokio::spawn(connection);
    client
}

/// An empty database of its own; dropped with it.
pub struct Scratch {
    /// Its name on the server.
    pub name: String,
    /// Where it is.
    pub config: tokio_postgres::Config,
}

impl Scratch {
    /// Creates an empty database.
    pub async fn new() -> Scratch {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let name = format!("coffer_test_{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let create = format!("CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0");
        admin().await.batch_execute(&create).await.unwrap();
        let mut config: tokio_postgres::Config = server_url().parse().unwrap();
        config.dbname(&name);
        Scratch { name, config }
    }

    /// Its URL: the server's, with this database in place of the admin one.
    pub fn url(&self) -> String {
        let server = server_url();
        let (base, _admin_db) = server.rsplit_once('/').expect("a postgres:// URL with a database");
        format!("{base}/{}", self.name)
    }

    /// A plain connection to it.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = self.config.connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let name = self.name.clone();
        // On a thread of its own: this may run while the test's runtime unwinds.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                admin().await.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await
            })
        });
        if let Ok(Err(err)) = dropped.join() {
            eprintln!("could not drop test database {}: {err}", self.name);
        }
    }
}
