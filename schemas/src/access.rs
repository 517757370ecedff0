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
//! Reading comes down to [`ReadAccess`]: who is named in the task and which
//! project it is in. Every service keeps that of each task it knows (the
//! runtime's `task_readers` table, or the live feed's memory), and its own
//! copy of the memberships (`taskflow_runtime::directory`); the runtime's
//! `access` module is this rule in SQL for lists, and nothing else decides.

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

    /// What reading it depends on: who is named in it, and its project.
    pub fn read_access(&self) -> ReadAccess {
        ReadAccess {
            named: self.readers(),
            project: self.project,
        }
    }

    fn names(&self, user: Uuid) -> bool {
        self.assignee == Some(user) || self.observers.contains(&user)
    }

    /// `role`: the user's role in the task's project, if it has one.
    pub fn may_read(&self, user: Uuid, role: Option<ProjectRole>, admin: bool) -> bool {
        self.read_access().may_read(user, role.is_some(), admin)
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

/// Who may read a task, as every service keeps it: those it names (its
/// assignee and observers, and its creator outside projects) and the
/// project whose members read it too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadAccess {
    /// Once each ([`Participants::readers`]).
    pub named: Vec<Uuid>,
    pub project: Option<Uuid>,
}

impl ReadAccess {
    /// The rule itself. `member`: the user holds a role in [`Self::project`];
    /// `admin`: the directory says they are an admin now.
    pub fn may_read(&self, user: Uuid, member: bool, admin: bool) -> bool {
        admin || self.named.contains(&user) || (self.project.is_some() && member)
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
