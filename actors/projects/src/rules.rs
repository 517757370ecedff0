//! The project rules, free of IO: what a valid project is and who may do
//! what to it.

use taskflow_schemas::limits::TRIMMED;
use taskflow_schemas::project::ProjectRole;
use taskflow_schemas::{ErrorBody, ErrorCode};

pub const MAX_NAME: usize = 100;
pub const MAX_DESCRIPTION: usize = 2_000;

/// A name trimmed, 1 to [`MAX_NAME`] characters.
pub fn name(raw: &str) -> Result<String, ErrorBody> {
    let name = raw.trim_matches(TRIMMED);
    if name.is_empty() || name.chars().count() > MAX_NAME || name.contains('\0') {
        return Err(ErrorBody::invalid(
            "name",
            format!("1 to {MAX_NAME} characters, not only spaces"),
        ));
    }
    Ok(name.to_owned())
}

pub fn description(raw: Option<String>) -> Result<Option<String>, ErrorBody> {
    match raw {
        Some(text) if text.chars().count() > MAX_DESCRIPTION || text.contains('\0') => {
            Err(ErrorBody::invalid(
                "description",
                format!("at most {MAX_DESCRIPTION} characters"),
            ))
        }
        other => Ok(other),
    }
}

/// What a user asks to do to a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Read,
    /// Change the project, its members, or delete it.
    Manage,
}

/// Whether `role` (none for a non-member) may `act`: members of any role
/// read, owners manage; admins read every project. A non-member is told
/// the project does not exist (404), a member without the right is
/// refused (403).
pub fn allow(role: Option<ProjectRole>, admin: bool, act: Act) -> Result<(), ErrorBody> {
    let forbidden = || {
        ErrorBody::new(
            ErrorCode::Forbidden,
            "only the project's owners may change it or its members",
        )
    };
    match (role, act) {
        (Some(ProjectRole::Owner), _) | (Some(_), Act::Read) => Ok(()),
        (None, Act::Read) if admin => Ok(()),
        (Some(_), Act::Manage) => Err(forbidden()),
        (None, Act::Manage) if admin => Err(forbidden()),
        (None, _) => Err(not_found()),
    }
}

pub fn not_found() -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, "project not found")
}

/// A project keeps at least one owner.
pub fn last_owner() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::Conflict,
        "a project keeps at least one owner: add another owner first",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("  Launch \n").unwrap(), "Launch");
        assert_eq!(name(" \t").unwrap_err().field.as_deref(), Some("name"));
        assert!(name(&"x".repeat(MAX_NAME + 1)).is_err());
        assert!(description(Some("d".repeat(MAX_DESCRIPTION + 1))).is_err());
        assert_eq!(description(None).unwrap(), None);
    }

    #[test]
    fn members_read_owners_manage_strangers_see_nothing() {
        use ProjectRole::*;
        assert!(allow(Some(Viewer), false, Act::Read).is_ok());
        assert!(allow(Some(Owner), false, Act::Manage).is_ok());
        assert_eq!(
            allow(Some(Member), false, Act::Manage).unwrap_err().code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            allow(None, false, Act::Read).unwrap_err().code,
            ErrorCode::NotFound
        );
        assert!(allow(None, true, Act::Read).is_ok(), "admins read all");
        assert_eq!(
            allow(None, true, Act::Manage).unwrap_err().code,
            ErrorCode::Forbidden,
            "and manage only by the rules"
        );
    }
}
