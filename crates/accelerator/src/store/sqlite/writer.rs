//! The writer: one thread owns the writing connection and commits the writes
//! handed to it in batches. Writes that arrive while a batch runs and syncs wait for
//! the next one, which takes all of them (up to [`MAX_BATCH`]): each runs in a
//! savepoint of its own, so a refused write undoes only itself, and the batch is one
//! transaction and one sync. A write is answered only once its batch is durable, in
//! the order writes arrived.
//!
//! With writes one transaction each, the store committed a few hundred kv writes a
//! second with 64 clients in flight, each waiting for its own sync; batched, a sync
//! serves every write that waited for it (`scripts/bench`'s kv load table).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::backend;
use crate::store::StoreError;

/// Writes in one batch at most: a batch's answers wait for its last write.
pub const MAX_BATCH: usize = 512;

/// What a write leaves to do once its batch is committed (or not): answer.
type Answer = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A write: run on the writer's connection (or, if the batch could not begin, told
/// why), it returns its answer.
type Job = Box<dyn FnOnce(Result<&Connection, StoreError>) -> Answer + Send>;

/// The writing connection on its thread.
pub struct Writer {
    /// Where writes are handed over; `None` once stopping.
    jobs: Option<mpsc::Sender<Job>>,
    /// The thread, joined on drop so the connection is closed when the store is.
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread that owns `conn`.
    pub fn start(conn: Connection) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(&conn, &queue))
            .expect("spawn the SQLite writer thread");
        Writer { jobs: Some(jobs), thread: Some(thread) }
    }

    /// Runs `write` in the next batch and waits until that batch is durable. What
    /// `write` returns is the answer; if it fails, what it changed is undone and
    /// the rest of the batch goes on. A panic in `write` fails only that write.
    pub fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |conn| {
            let result = conn.and_then(|conn| in_savepoint(conn, write));
            Box::new(move |committed| {
                let _ = answer.send(committed.and(result));
            })
        });
        let stopped = || StoreError::Backend("the SQLite writer has stopped".into());
        self.jobs.as_ref().ok_or_else(stopped)?.send(job).map_err(|_| stopped())?;
        answered.recv().unwrap_or_else(|_| Err(stopped()))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The thread ends once every write handed over is answered.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `write` in a savepoint: kept if it succeeds, rolled back if it fails or
/// panics.
fn in_savepoint<T>(
    conn: &Connection,
    write: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT write").map_err(backend)?;
    let result = catch_unwind(AssertUnwindSafe(|| write(conn)))
        .unwrap_or_else(|_| Err(StoreError::Backend("a write panicked; it was undone".into())));
    let end = if result.is_ok() { "RELEASE write" } else { "ROLLBACK TO write; RELEASE write" };
    conn.execute_batch(end).map_err(backend)?;
    result
}

/// The writer thread: a batch at a time until every sender is gone.
fn run(conn: &Connection, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let answers: Vec<Answer>;
        let committed = match conn.execute_batch("BEGIN IMMEDIATE").map_err(backend) {
            Ok(()) => {
                answers = jobs.into_iter().map(|job| job(Ok(conn))).collect();
                let committed = conn.execute_batch("COMMIT").map_err(backend);
                if committed.is_err() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                committed
            }
            Err(err) => {
                answers = jobs.into_iter().map(|job| job(Err(err.clone()))).collect();
                Err(err)
            }
        };
        for answer in answers {
            answer(committed.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_refused_or_panicking_write_undoes_only_itself() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)").unwrap();
        let writer = Arc::new(Writer::start(conn));
        let threads: Vec<_> = (0..64i64)
            .map(|n| {
                let writer = Arc::clone(&writer);
                std::thread::spawn(move || {
                    writer.write(move |conn| {
                        conn.execute("INSERT INTO t (n) VALUES (?1)", [n]).map_err(backend)?;
                        match n % 3 {
                            0 => Ok(n),
                            1 => Err(StoreError::BadCursor),
                            _ => panic!("a bug in write {n}"),
                        }
                    })
                })
            })
            .collect();
        for (n, thread) in threads.into_iter().enumerate() {
            let answer = thread.join().unwrap();
            match n % 3 {
                0 => assert_eq!(answer, Ok(n as i64)),
                1 => assert_eq!(answer, Err(StoreError::BadCursor)),
                _ => assert!(matches!(answer, Err(StoreError::Backend(_))), "{answer:?}"),
            }
        }
        let kept: Vec<i64> = writer
            .write(|conn| {
                let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").map_err(backend)?;
                let rows = stmt.query_map([], |r| r.get(0)).map_err(backend)?;
                rows.collect::<Result<_, _>>().map_err(backend)
            })
            .unwrap();
        assert_eq!(kept, (0..64).filter(|n| n % 3 == 0).collect::<Vec<_>>());
    }
}
