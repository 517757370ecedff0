//! The projects service: owns the `taskflow_projects` database, where
//! projects and their memberships (`owner`, `member`, `viewer`) live.
//!
//! Answers: `CreateProject`, `ListProjects`, `GetProject`, `UpdateProject`,
//! `DeleteProject`, `AddMember`, `ListMembers`, `RemoveMember`
//! (`taskflow.projects.*`). Members read a project; owners change it and
//! its members; a project always keeps an owner (409); admins read all.
//! Consumes: `AUDIT` `audit.user.>` and `audit.project.>` (durable
//! `projects-directory`, the runtime's directory): which users exist, so
//! that only they become members, and who is an admin.
//! Publishes: `project.created`, `project.updated`, `project.deleted`,
//! `project.member_added`, `project.member_role_changed`,
//! `project.member_removed` on `AUDIT`, through its outbox.

pub mod rules;
pub mod service;
pub mod store;

use sqlx::migrate::Migrator;
use taskflow_runtime::bus::Endpoints;
use taskflow_runtime::directory;
use taskflow_runtime::service::ServiceDefinition;
use taskflow_schemas::catalogue::{
    AddMember, CreateProject, DeleteProject, GetProject, ListMembers, ListProjects, RemoveMember,
    UpdateProject,
};

use crate::service::ProjectsService;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/projects");

pub static SERVICE: ServiceDefinition<ProjectsService> = ServiceDefinition {
    name: "projects",
    description: "Projects: projects, their members and roles",
    migrator: &MIGRATOR,
    workers: 8,
    outbox: true,
    publishes_directory: true,
    check_settings: |_| Ok(()),
    ops_addr: "127.0.0.1:9106",
    state: |platform, parts| {
        ProjectsService::new(
            parts.pool.clone(),
            parts.relay(),
            platform.jetstream.clone(),
        )
    },
    endpoints,
    consumers: |_, parts| vec![directory::consumer("projects", &parts.directory)],
    actors: Vec::new,
};

/// Each command calls the method of its name as the user who sent it.
macro_rules! as_user {
    ($method:ident) => {
        |projects, context, request| async move {
            let user = projects.recheck(request.user()).await?;
            projects.$method(&context, user, request.body).await
        }
    };
    (read $method:ident) => {
        |projects, _, request| async move {
            let user = request.user();
            projects.$method(user, request.body).await
        }
    };
}

fn endpoints() -> Endpoints<ProjectsService> {
    Endpoints::<ProjectsService>::new()
        .on::<CreateProject, _, _, _>(as_user!(create))
        .on::<ListProjects, _, _, _>(as_user!(read list))
        .on::<GetProject, _, _, _>(as_user!(read get))
        .on::<UpdateProject, _, _, _>(as_user!(update))
        .on::<DeleteProject, _, _, _>(as_user!(delete))
        .on::<AddMember, _, _, _>(as_user!(add_member))
        .on::<ListMembers, _, _, _>(as_user!(read members))
        .on::<RemoveMember, _, _, _>(as_user!(remove_member))
}
