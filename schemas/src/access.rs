//! Who may do what with a task: one rule, which every place that decides it
//! calls (the tasks service for REST and NATS, the audit's record
//! visibility, the schedules, the notifications and the live feed).
//!
//! - A task without a project belongs to its creator, who alone changes or
//!   deletes it.
//! - In a project, its owners and members change and delete its tasks and
//!   its viewers read them; the creator has no right beyond their role.
//! - The assignee and the observers read the task and may complete it.
//! - Admins read every task and write under the same rules as anyone.
//!
//! Each service holds this rule's inputs itself: the task's people and
//! project, and its own copy of the memberships (`taskflow_runtime::directory`).
//! Where a filter must run in the database, it is this rule in SQL: a reader
//! is among [`Participants::readers`] or holds a role in the task's project.

use uuid::Uuid;

use crate::project::ProjectRole;
use crate::task::Task;

/// What of a task decides who may use it.
#[derive(Debug, Clone, Copy)]
pub struct Participants<'a> {
    pub creator: Uuid,
    pub project: Option<Uuid>,
    pub assignee: Option<Uuid>,
    pub observers: &'a [Uuid],
}

impl<'a> Participants<'a> {
    pub fn of(task: &'a Task) -> Self {
        Self {
            creator: task.creator_id,
            project: task.project_id,
            assignee: task.assignee_id,
            observers: &task.observer_ids,
        }
    }

    /// Who reads it by being named in it, sorted, once each: the assignee,
    /// the observers, and without a project its creator. Members of its
    /// project read it through their role, besides these.
    pub fn readers(&self) -> Vec<Uuid> {
        let mut readers: Vec<Uuid> = self.assignee.into_iter().collect();
        if self.project.is_none() {
            readers.push(self.creator);
        }
        readers.extend_from_slice(self.observers);
        readers.sort();
        readers.dedup();
        readers
    }

    fn names(&self, user: Uuid) -> bool {
        self.assignee == Some(user) || self.observers.contains(&user)
    }

    /// `role`: the user's role in the task's project, if it has one.
    pub fn may_read(&self, user: Uuid, role: Option<ProjectRole>, admin: bool) -> bool {
        admin || self.names(user) || self.may_write(user, role) || role.is_some()
    }

    /// Change, move or delete it.
    pub fn may_write(&self, user: Uuid, role: Option<ProjectRole>) -> bool {
        match self.project {
            None => self.creator == user,
            Some(_) => role.is_some_and(ProjectRole::writes),
        }
    }

    /// Whoever writes it, and its assignee and observers.
    pub fn may_complete(&self, user: Uuid, role: Option<ProjectRole>) -> bool {
        self.names(user) || self.may_write(user, role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> [Uuid; 4] {
        [(); 4].map(|_| Uuid::now_v7())
    }

    #[test]
    fn without_a_project_the_creator_writes_and_the_named_read_and_complete() {
        let [ada, bob, cy, eve] = ids();
        let observers = [cy, cy];
        let task = Participants {
            creator: ada,
            project: None,
            assignee: Some(bob),
            observers: &observers,
        };
        let mut readers = vec![ada, bob, cy];
        readers.sort();
        assert_eq!(task.readers(), readers);
        assert!(task.may_write(ada, None) && !task.may_write(bob, None));
        assert!(task.may_complete(bob, None) && task.may_complete(cy, None));
        assert!(!task.may_complete(eve, None));
        assert!(!task.may_read(eve, None, false) && task.may_read(eve, None, true));
        assert!(
            !task.may_write(eve, None),
            "an admin writes under the same rules"
        );
    }

    #[test]
    fn in_a_project_roles_decide_and_the_creator_is_no_one_special() {
        let [ada, bob, cy, eve] = ids();
        let task = Participants {
            creator: ada,
            project: Some(Uuid::now_v7()),
            assignee: Some(bob),
            observers: &[],
        };
        assert_eq!(task.readers(), vec![bob]);
        for (role, writes) in [
            (ProjectRole::Owner, true),
            (ProjectRole::Member, true),
            (ProjectRole::Viewer, false),
        ] {
            assert!(task.may_read(cy, Some(role), false));
            assert_eq!(task.may_write(cy, Some(role)), writes);
            assert_eq!(task.may_complete(cy, Some(role)), writes);
        }
        assert!(
            !task.may_read(ada, None, false),
            "a creator who left reads no more"
        );
        assert!(!task.may_write(ada, None));
        assert!(task.may_complete(bob, None) && !task.may_write(bob, None));
        assert!(!task.may_read(eve, None, false) && task.may_read(eve, None, true));
    }
}
