//! The store for async code: every call runs on tokio's blocking pool, never on a runtime
//! worker, so a slow or unreachable database never stalls the proxy's tasks.

use std::sync::{Arc, Mutex};

use twinpeak_core::sync::lock;

use super::{Location, Settings, StateError, Store};

/// A [`Store`] shared between tasks; calls take turns.
#[derive(Debug, Clone)]
pub struct SharedStore {
    store: Arc<Mutex<Store>>,
}

impl SharedStore {
    /// Shares `store`.
    pub fn new(store: Store) -> Self {
        SharedStore {
            store: Arc::new(Mutex::new(store)),
        }
    }

    /// Opens the store ([`Store::open`]) off the runtime.
    pub async fn open(location: Location, settings: Settings) -> Result<Self, StateError> {
        match tokio::task::spawn_blocking(move || Store::open(&location, settings)).await {
            Ok(opened) => opened.map(SharedStore::new),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => std::future::pending().await,
        }
    }

    /// Runs `call` on the store on this thread, waiting for a call in progress to end: for
    /// code outside any runtime (the last flush, after the server has stopped).
    pub fn call_here<T>(&self, call: impl FnOnce(&mut Store) -> T) -> T {
        call(&mut lock(&self.store))
    }

    /// Runs `call` on the store off the runtime and returns what it returns. A call that
    /// panicked panics here too; one the runtime cancelled (it is shutting down, and so is
    /// the caller) never returns.
    pub async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Store) -> T + Send + 'static,
    ) -> T {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || call(&mut lock(&store))).await {
            Ok(value) => value,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => std::future::pending().await,
        }
    }
}
