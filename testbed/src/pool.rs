//! A small fixed pool of SQLite connections, checked out asynchronously.
//!
//! A task waits for a free connection without holding a thread, then takes it into
//! `spawn_blocking`; the connection goes back to the pool when the [`Pooled`] handle drops,
//! including when the waiting request was abandoned.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A fixed set of open connections.
pub(crate) struct Pool {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Pool {
    /// A pool of these connections.
    pub fn new(connections: Vec<Connection>) -> Arc<Pool> {
        Arc::new(Pool {
            permits: Arc::new(Semaphore::new(connections.len())),
            idle: Mutex::new(connections),
        })
    }

    /// Waits for a free connection.
    pub async fn get(self: &Arc<Self>) -> Pooled {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed");
        // A permit guarantees an idle connection: there are as many permits as connections.
        let conn = self
            .lock()
            .pop()
            .expect("a permit implies an idle connection");
        Pooled {
            conn: Some(conn),
            pool: Arc::clone(self),
            _permit: permit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A connection checked out of a [`Pool`]; back in the pool on drop.
pub(crate) struct Pooled {
    conn: Option<Connection>,
    pool: Arc<Pool>,
    // Dropped after `drop` has put the connection back, so a woken waiter finds it.
    _permit: OwnedSemaphorePermit,
}

impl Deref for Pooled {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.lock().push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_checkout_waits_for_a_return() {
        let pool = Pool::new(vec![Connection::open_in_memory().unwrap()]);
        let first = pool.get().await;
        let waiting = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move {
                let conn = pool.get().await;
                conn.query_row("SELECT 7", [], |r| r.get::<_, i64>(0))
                    .unwrap()
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(first);
        assert_eq!(waiting.await.unwrap(), 7);
        assert_eq!(pool.lock().len(), 1);
    }
}
