//! The store's conformance suite: every case runs against every backend, so a
//! behaviour cannot differ between them.
//!
//! A case is an `async fn(Kind)` that opens its backend; [`conformance!`] makes one `#[tokio::test]` of
//! it per backend, named `<backend>::<case>`. A backend is the records and the
//! shard store an accelerator would use, opened fresh for the case: SQLite and a
//! directory; PostgreSQL (a database of the case's own on `COFFER_TEST_POSTGRES`)
//! and an S3 bucket (moto's server, from `target/moto-venv`).

#[path = "../common/moto.rs"]
mod moto;
#[path = "../common/postgres.rs"]
mod pg;

mod holds;
mod keeper;
mod many;
mod records;
mod schema;
mod space_keys;

use std::sync::Arc;

use coffer_accelerator::store::objects::ObjectShards;
use coffer_accelerator::store::postgres::PgRecords;
use coffer_accelerator::store::shards::ShardStore;
use coffer_accelerator::store::sqlite::SqliteRecords;
use coffer_accelerator::store::{Credentials, Records, User};

/// How a case wants its backend.
#[derive(Clone, Copy)]
pub struct Options {
    /// Change-log entries kept per user.
    pub retain: u64,
    /// Shards per step of a commit, a delete or a space's end.
    pub step: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { retain: 10, step: 1024 }
    }
}

/// The backends the suite runs against.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// SQLite and a shard directory, in a temporary directory.
    Sqlite,
    /// PostgreSQL (a database of the case's own) and an S3 bucket (moto).
    Postgres,
}

/// A fresh backend for one case.
pub struct Backend {
    /// Which.
    pub kind: Kind,
    /// Its records.
    pub records: Arc<dyn Records>,
    /// Its shard store.
    pub shards: Arc<dyn ShardStore>,
    options: Options,
    dir: tempfile::TempDir,
    /// PostgreSQL's database, and the S3 server, while the case runs.
    remote: Option<(pg::Scratch, moto::Moto)>,
}

/// Where a backend's data is: a directory, or a database and a bucket.
type Remote = Option<(pg::Scratch, moto::Moto)>;

/// Opens the records (taking `step` shards per step) and the shards of the data
/// in `dir` or `remote`.
async fn connect(
    dir: &std::path::Path,
    remote: &Remote,
    options: Options,
    step: usize,
) -> (Arc<dyn Records>, Arc<dyn ShardStore>) {
    match remote {
        None => {
            let records = SqliteRecords::open(dir, options.retain).unwrap();
            (Arc::new(records.with_step(step)), Arc::new(ObjectShards::embedded(dir).unwrap()))
        }
        Some((db, moto)) => {
            let records = PgRecords::connect(&db.url(), options.retain).await.unwrap();
            let shards = ObjectShards::from_url_with("s3://shards/coffer", moto.options()).unwrap();
            (Arc::new(records.with_step(step)), Arc::new(shards))
        }
    }
}

impl Backend {
    /// Opens a fresh backend of `kind`.
    pub async fn open(kind: Kind, options: Options) -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let remote = match kind {
            Kind::Sqlite => None,
            Kind::Postgres => {
                let moto = moto::Moto::start();
                moto.bucket("shards").await;
                Some((pg::Scratch::new().await, moto))
            }
        };
        let (records, shards) = connect(dir.path(), &remote, options, options.step).await;
        Backend { kind, records, shards, options, dir, remote }
    }

    /// The same data through a new handle, as after a restart (the old handle is
    /// dropped first).
    pub async fn reopen(self) -> Backend {
        let Backend { kind, records, shards, options, dir, remote } = self;
        drop((records, shards));
        let (records, shards) = connect(dir.path(), &remote, options, options.step).await;
        Backend { kind, records, shards, options, dir, remote }
    }

    /// Another accelerator on the same data, taking `step` shards per step, as
    /// several would run side by side. SQLite serves one process: there it is the
    /// same handle.
    pub async fn another(&self, step: usize) -> Arc<dyn Records> {
        match self.kind {
            Kind::Sqlite => Arc::clone(&self.records),
            Kind::Postgres => connect(self.dir.path(), &self.remote, self.options, step).await.0,
        }
    }

    /// Runs a `SELECT count(*) …` straight on the database: what a case checks of
    /// the tables that no method shows (drafts, references).
    pub async fn count(&self, sql: &str) -> i64 {
        match &self.remote {
            None => {
                let path = self.dir.path().join(coffer_accelerator::store::sqlite::FILE_NAME);
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.query_row(sql, [], |r| r.get(0)).unwrap()
            }
            Some((db, _)) => db.client().await.query_one(sql, &[]).await.unwrap().get(0),
        }
    }

    /// Runs statements straight on the database: what a case sets up that no method
    /// makes (keys stored before sealed names, which are legacy).
    pub async fn execute(&self, sql: &str) {
        match &self.remote {
            None => {
                let path = self.dir.path().join(coffer_accelerator::store::sqlite::FILE_NAME);
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            Some((db, _)) => db.client().await.batch_execute(sql).await.unwrap(),
        }
    }

    /// On PostgreSQL, a connection whose open transaction holds `user_id`'s row lock,
    /// as a write of theirs in flight does, until it is dropped; `None` on SQLite
    /// (one writer: there a lock is not held across calls).
    pub async fn hold_user_lock(&self, user_id: &str) -> Option<tokio_postgres::Client> {
        let (db, _) = self.remote.as_ref()?;
        let client = db.client().await;
        client.batch_execute("BEGIN").await.unwrap();
        let locked = client.execute("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE", &[&user_id]).await.unwrap();
        assert_eq!(locked, 1, "{user_id} exists");
        Some(client)
    }
}

/// A user named `name` (id `id-{name}`) whose login key is `[key; 32]`.
pub fn user(name: &str, key: u8) -> User {
    User {
        user_id: format!("id-{name}"),
        username: name.into(),
        credentials: Credentials {
            salt: [1; 16],
            kdf: Default::default(),
            login_public_key: [key; 32],
            wrapped_root: vec![1; 61],
        },
        kv_seq: 0,
        user_public_key: Some([9; 32]),
        recovery: None,
    }
}

/// One `#[tokio::test]` per case and backend.
macro_rules! conformance {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$module::$case(super::Kind::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$module::$case(super::Kind::Postgres).await
                }
            )*
        }
    };
}

conformance! {
    records::log_is_pruned_to_retain,
    records::reopening_keeps_everything,
    records::a_key_rewritten_costs_one_value_in_the_log_and_the_allowance,
    records::a_space_holds_a_bounded_number_of_live_invites,
    records::challenges_are_taken_once,
    records::credentials_change_only_from_the_expected_key,
    records::a_recovery_code_replaces_credentials_only_while_it_is_current,
    records::signing_in_past_the_session_cap_revokes_the_oldest,
    records::shard_stamps_references_and_collection,
    records::other_writes_come_between_the_steps_of_a_commit,
    records::a_commit_of_many_steps_is_refused_before_its_first,
    records::a_commit_that_never_finished_is_withdrawn_at_its_deadline,
    records::a_space_its_last_member_left_goes_a_step_at_a_time,
    keeper::collection_takes_only_unpinned_unreferenced_shards,
    keeper::a_commit_takes_only_its_writers_uploads_or_its_spaces_shards,
    keeper::uploads_are_charged_until_committed_or_expired,
    keeper::freeing_skips_shards_referenced_meanwhile,
    keeper::the_collector_takes_apart_commits_that_never_finished,
    keeper::the_sweep_removes_only_unrecorded_bytes,
    holds::holds_wait_only_for_holds_of_the_same_address,
    holds::holds_of_overlapping_sets_never_wait_in_a_circle,
    holds::a_shard_freed_on_one_accelerator_while_stored_on_another_keeps_its_bytes,
    records::kv_lists_in_byte_order_with_cursors,
    records::legacy_keys_are_listed_in_order_and_renamed_moved_dropped_or_skipped,
    records::a_legacy_page_holds_values_up_to_its_byte_cap,
    records::a_set_is_legacy_unless_both_names_look_sealed,
    records::a_rename_for_a_user_with_nothing_legacy_looks_nothing_up,
    records::membership_roles_invites_and_pages,
    many::every_accelerator_gets_the_secret_stored_first,
    many::concurrent_kv_writes_of_one_user_get_every_sequence_number_once,
    many::concurrent_commits_into_one_space_never_pass_its_quota,
    many::concurrent_joins_use_an_invite_exactly_as_often_as_it_allows,
    many::concurrent_unwinds_of_files_sharing_a_shard_free_it,
    space_keys::a_published_key_never_changes_and_a_roster_entry_needs_one,
    space_keys::every_commit_path_is_refused_off_the_current_epoch,
    space_keys::concurrent_rotations_to_one_epoch_let_one_win,
    space_keys::a_rotation_takes_a_writer_or_owner_and_a_rotation_due,
}
