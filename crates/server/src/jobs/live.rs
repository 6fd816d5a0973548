//! What this process knows of jobs before the database does: the progress of the jobs its
//! workers run (written to the database every second, but a SQLite write transaction of the
//! job itself can hold that write back), and the event streams each user has open.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::exports::render::Control;

/// Cheap to clone: every clone is the same record.
#[derive(Clone, Default)]
pub struct Live(Arc<Inner>);

#[derive(Default)]
struct Inner {
    running: Mutex<HashMap<Uuid, Arc<Control>>>,
    streams: Mutex<HashMap<Uuid, usize>>,
}

/// Rows done and in all (0: not known yet) of a job running here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveProgress {
    pub done: u64,
    pub total: u64,
}

impl Live {
    /// The progress of job `id`, when one of this process's workers runs it.
    pub fn progress(&self, id: Uuid) -> Option<LiveProgress> {
        let running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        running.get(&id).map(|c| LiveProgress {
            done: c.rows.load(Ordering::Relaxed),
            total: c.total.load(Ordering::Relaxed),
        })
    }
}

/// Job `id` runs here with `control` until this is dropped.
pub struct Running {
    live: Live,
    id: Uuid,
}

pub fn running(live: &Live, id: Uuid, control: Arc<Control>) -> Running {
    let mut map = live.0.running.lock().unwrap_or_else(|e| e.into_inner());
    map.insert(id, control);
    Running {
        live: live.clone(),
        id,
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut map = self
            .live
            .0
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.remove(&self.id);
    }
}

/// One of a user's open event streams, counted until dropped.
pub struct Stream {
    live: Live,
    user: Uuid,
}

/// A place for one more event stream of `user`, unless they have `max` open on this process.
pub fn open_stream(live: &Live, user: Uuid, max: usize) -> Option<Stream> {
    let mut streams = live.0.streams.lock().unwrap_or_else(|e| e.into_inner());
    let open = streams.entry(user).or_insert(0);
    if *open >= max {
        return None;
    }
    *open += 1;
    Some(Stream {
        live: live.clone(),
        user,
    })
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut streams = self
            .live
            .0
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(open) = streams.get_mut(&self.user) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.user);
            }
        }
    }
}
