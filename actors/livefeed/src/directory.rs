//! The feed's directory, in memory: who is an admin and who holds a role in
//! which project (from `AUDIT`), and which tasks each project holds, with who
//! is named in them (from `TASKS`). The hub keeps it; sessions read it to
//! replay what a viewer may see now. The access rule is
//! `taskflow_schemas::access`, the same as everywhere.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use taskflow_schemas::EventEnvelope;
use taskflow_schemas::access::ReadAccess;
use taskflow_schemas::envelope::SCHEMA_VERSION;
use taskflow_schemas::events::{self, RoleChangePayload};
use taskflow_schemas::feed::FeedCursor;
use taskflow_schemas::project::ProjectEventPayload;
use taskflow_schemas::user::Role;
use uuid::Uuid;

use crate::event::LiveEvent;

/// The hub writes it; sessions read it.
pub type SharedDirectory = Arc<RwLock<FeedDirectory>>;

/// The `AUDIT` subjects the directory follows.
pub const SUBJECTS: [&str; 2] = ["audit.project.>", "audit.user.role_changed"];

#[derive(Debug, Default)]
pub struct FeedDirectory {
    admins: HashSet<Uuid>,
    /// Project → its members (any role).
    members: HashMap<Uuid, HashSet<Uuid>>,
    /// Project → its tasks → who is named in each (they keep reading it
    /// when they leave the project).
    tasks: HashMap<Uuid, HashMap<Uuid, Vec<Uuid>>>,
    /// Task → its project (none, or deleted) and the stream sequence of the
    /// event that said so.
    placed: HashMap<Uuid, (Option<Uuid>, u64)>,
    /// The project's version of the change applied last to each
    /// membership, and the role version of each user's role: an older
    /// change coming again (republished after a server lost its tail)
    /// changes nothing.
    membership_versions: HashMap<(Uuid, Uuid), i64>,
    role_versions: HashMap<Uuid, i64>,
    /// Where the last change applied is on `AUDIT`, checked by its event
    /// id: after a reconnection the hub asks whether the stream still holds
    /// it there.
    head: FeedCursor,
}

/// A user who lost their role in a project, and so the project's tasks they
/// are not named in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    pub user: Uuid,
    pub tasks: Vec<Uuid>,
}

impl FeedDirectory {
    pub fn shared() -> SharedDirectory {
        Arc::new(RwLock::new(Self::default()))
    }

    pub fn is_admin(&self, user: Uuid) -> bool {
        self.admins.contains(&user)
    }

    pub fn is_member(&self, project: Uuid, user: Uuid) -> bool {
        self.members
            .get(&project)
            .is_some_and(|members| members.contains(&user))
    }

    /// Whether `user` may read a task with `access`: the access rule, with
    /// this directory's admins and members.
    pub fn reads(&self, user: Uuid, access: &ReadAccess) -> bool {
        let member = access
            .project
            .is_some_and(|project| self.is_member(project, user));
        access.may_read(user, member, self.is_admin(user))
    }

    /// The `AUDIT` sequence of the last membership or role change applied.
    pub fn applied(&self) -> u64 {
        self.head.seq
    }

    /// The last membership or role change applied, as a place on `AUDIT`.
    pub fn head(&self) -> FeedCursor {
        self.head
    }

    /// Applies one `AUDIT` event of [`SUBJECTS`], stored at `seq`; says who
    /// lost which tasks. Anything else (or a payload that is not what its
    /// type says) changes nothing: the consumers send such messages to the DLQ.
    pub fn apply_audit(&mut self, seq: u64, payload: &[u8]) -> Vec<Lost> {
        if seq >= self.head.seq {
            self.head = crate::cursor::of_message(seq, payload);
        }
        let Ok(envelope) = serde_json::from_slice::<EventEnvelope>(payload) else {
            return Vec::new();
        };
        if envelope.schema_version != SCHEMA_VERSION {
            return Vec::new();
        }
        if envelope.event_type == events::USER_ROLE_CHANGED {
            if let Ok(change) = serde_json::from_value::<RoleChangePayload>(envelope.payload)
                && newer(&mut self.role_versions, change.user_id, change.version)
            {
                match change.role {
                    Role::Admin => self.admins.insert(change.user_id),
                    Role::Member => self.admins.remove(&change.user_id),
                };
            }
            return Vec::new();
        }
        let Ok(event) = serde_json::from_value::<ProjectEventPayload>(envelope.payload) else {
            return Vec::new();
        };
        let project = event.project.id;
        let version = event.project.version;
        let member = event.member.filter(|member| {
            newer(
                &mut self.membership_versions,
                (project, member.user_id),
                version,
            )
        });
        match (envelope.event_type.as_str(), member) {
            (events::PROJECT_DELETED, _) => {
                let members = self.members.remove(&project).unwrap_or_default();
                let lost = members
                    .into_iter()
                    .map(|user| self.lost(project, user))
                    .collect();
                self.tasks.remove(&project);
                lost
            }
            (events::PROJECT_MEMBER_REMOVED, Some(member)) => {
                let removed = self
                    .members
                    .get_mut(&project)
                    .is_some_and(|members| members.remove(&member.user_id));
                match removed {
                    true => vec![self.lost(project, member.user_id)],
                    false => Vec::new(),
                }
            }
            (_, Some(member)) => {
                self.members
                    .entry(project)
                    .or_default()
                    .insert(member.user_id);
                Vec::new()
            }
            (_, None) => Vec::new(),
        }
    }

    fn lost(&self, project: Uuid, user: Uuid) -> Lost {
        let tasks = self
            .tasks
            .get(&project)
            .into_iter()
            .flatten()
            .filter(|(_, named)| !named.contains(&user))
            .map(|(task, _)| *task)
            .collect();
        Lost { user, tasks }
    }

    /// Keeps which project `event`'s task is in, unless a later event of it
    /// was applied already.
    pub fn apply_task(&mut self, event: &LiveEvent) {
        let Some(task) = event.task_id else { return };
        if let Some(&(project, seq)) = self.placed.get(&task) {
            if seq >= event.cursor.seq {
                return;
            }
            if let Some(tasks) = project.and_then(|project| self.tasks.get_mut(&project)) {
                tasks.remove(&task);
            }
        }
        // A deleted task stays as a tombstone: no earlier event brings it back.
        let project = event.access.project.filter(|_| !event.deleted);
        if let Some(project) = project {
            self.tasks
                .entry(project)
                .or_default()
                .insert(task, event.access.named.clone());
        }
        self.placed.insert(task, (project, event.cursor.seq));
    }
}

/// The directory to read; a writer that panicked left it as it was.
pub fn read(directory: &SharedDirectory) -> std::sync::RwLockReadGuard<'_, FeedDirectory> {
    directory
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn write(directory: &SharedDirectory) -> std::sync::RwLockWriteGuard<'_, FeedDirectory> {
    directory
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether a change at `version` is as new as the last one applied to
/// `key` (changes from before versions were counted are all 0, and apply in
/// the order they come), noting it when it is.
fn newer<K: std::hash::Hash + Eq>(versions: &mut HashMap<K, i64>, key: K, version: i64) -> bool {
    let last = versions.entry(key).or_insert(0);
    if version < *last {
        return false;
    }
    *last = version;
    true
}
