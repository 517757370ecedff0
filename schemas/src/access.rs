//! Who may do what with a task: one rule, which every place that decides it
//! calls (the tasks service for REST and NATS, the audit's record
//! visibility, the live feed's delivery). Without projects a task belongs to
//! its creator, who alone changes or deletes it; its assignee and observers
//! read it and may complete it; admins read every task and write under the
//! same rules as anyone.
//!
//! Two places hold this rule in SQL, because a filter must run in the
//! database: the tasks service's list query (creator, assignee or observer)
//! and the audit's `task_access` table, filled from [`Participants::readers`].
//! Change them together.

use uuid::Uuid;

use crate::task::Task;

/// The people a task names, as far as access goes.
#[derive(Debug, Clone, Copy)]
pub struct Participants<'a> {
    pub creator: Uuid,
    pub assignee: Option<Uuid>,
    pub observers: &'a [Uuid],
}

impl<'a> Participants<'a> {
    pub fn of(task: &'a Task) -> Self {
        Self {
            creator: task.creator_id,
            assignee: task.assignee_id,
            observers: &task.observer_ids,
        }
    }

    /// Everyone who may read the task, besides admins: sorted, once each.
    pub fn readers(&self) -> Vec<Uuid> {
        let mut readers = vec![self.creator];
        readers.extend(self.assignee);
        readers.extend_from_slice(self.observers);
        readers.sort();
        readers.dedup();
        readers
    }

    pub fn may_read(&self, user: Uuid, admin: bool) -> bool {
        admin
            || self.creator == user
            || self.assignee == Some(user)
            || self.observers.contains(&user)
    }

    /// Change or delete it: the creator only, admins included.
    pub fn may_write(&self, user: Uuid) -> bool {
        self.creator == user
    }

    /// Whoever may read it as a participant may complete it.
    pub fn may_complete(&self, user: Uuid) -> bool {
        self.may_read(user, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creator_writes_participants_read_and_complete_admins_read() {
        let (ada, bob, cy, eve) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let observers = [cy, cy];
        let task = Participants {
            creator: ada,
            assignee: Some(bob),
            observers: &observers,
        };
        let mut readers = vec![ada, bob, cy];
        readers.sort();
        assert_eq!(task.readers(), readers);
        assert!(task.may_write(ada) && !task.may_write(bob) && !task.may_write(eve));
        assert!(task.may_complete(bob) && task.may_complete(cy) && !task.may_complete(eve));
        assert!(!task.may_read(eve, false) && task.may_read(eve, true));
        assert!(!task.may_write(eve), "an admin writes under the same rules");
    }
}
