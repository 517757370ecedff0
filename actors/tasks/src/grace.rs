//! Waiting out the directory: a command refused because this service's
//! copy of the memberships has not yet seen a change made a moment ago in
//! another service (a project created, a member added) runs again as the
//! directory changes, for a short while, before the refusal goes back.

use std::time::Duration;

use taskflow_runtime::directory::DirectoryUpdates;
use tokio::sync::Semaphore;

use crate::error::TasksError;

/// How long a command refused by the directory waits for it to change
/// (a project or member added a moment ago in another service) before the
/// refusal goes back.
const DIRECTORY_GRACE: Duration = Duration::from_millis(500);

/// How often a command waiting out [`DIRECTORY_GRACE`] looks again, when
/// this instance hears of no change.
const RECHECK: Duration = Duration::from_millis(20);

/// Commands that may wait out [`DIRECTORY_GRACE`] at once. A waiting command
/// holds its worker: a flood of refused writes must not hold them all, so
/// the others are refused at once.
const GRACE_WAITERS: usize = 4;

/// The grace a command refused by the directory gets.
pub struct DirectoryGrace {
    directory: DirectoryUpdates,
    waiters: Semaphore,
}

impl DirectoryGrace {
    pub fn new(directory: DirectoryUpdates) -> Self {
        Self {
            directory,
            waiters: Semaphore::new(GRACE_WAITERS),
        }
    }

    /// Runs `command` again each time the directory changes, for up to
    /// [`DIRECTORY_GRACE`], while the directory refuses it: a project made or
    /// a member added a moment ago reaches this service's directory a few
    /// milliseconds after its event. The change may be applied by another
    /// instance of the service (they share the directory's consumer), which
    /// this one is not told of: it also looks again every [`RECHECK`].
    pub async fn settled<T, F>(&self, command: impl Fn() -> F) -> Result<T, TasksError>
    where
        F: Future<Output = Result<T, TasksError>>,
    {
        let mut changes = self.directory.subscribe();
        let grace = tokio::time::Instant::now() + DIRECTORY_GRACE;
        let mut waiting = None;
        loop {
            changes.mark_unchanged();
            match command().await {
                Err(TasksError::Unsettled(body)) => {
                    if waiting.is_none() {
                        waiting = self.waiters.try_acquire().ok();
                    }
                    if waiting.is_none() {
                        return Err(TasksError::Rejected(body));
                    }
                    let now = tokio::time::Instant::now();
                    if now >= grace {
                        return Err(TasksError::Rejected(body));
                    }
                    let next_look = grace.min(now + RECHECK);
                    let _ = tokio::time::timeout_at(next_look, changes.changed()).await;
                }
                done => return done,
            }
        }
    }
}
