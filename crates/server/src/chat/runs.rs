//! The replies this process is writing, so that a cancel reaches the task writing one.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;
use uuid::Uuid;

/// Running replies of this process, for cancellation.
#[derive(Default)]
pub struct Runs {
    running: Mutex<HashMap<Uuid, watch::Sender<bool>>>,
}

impl Runs {
    pub(crate) fn register(&self, id: Uuid) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        if let Ok(mut m) = self.running.lock() {
            m.insert(id, tx);
        }
        rx
    }

    pub(crate) fn remove(&self, id: Uuid) {
        if let Ok(mut m) = self.running.lock() {
            m.remove(&id);
        }
    }

    /// Whether this instance is writing the reply.
    pub fn is_running(&self, id: Uuid) -> bool {
        self.running.lock().is_ok_and(|m| m.contains_key(&id))
    }

    /// Asks a running reply to stop; false when it is not running here.
    pub fn cancel(&self, id: Uuid) -> bool {
        self.running
            .lock()
            .ok()
            .and_then(|m| m.get(&id).map(|tx| tx.send(true).is_ok()))
            .unwrap_or(false)
    }
}
