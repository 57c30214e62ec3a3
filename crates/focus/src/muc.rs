//! MUC roles and affiliations (XEP-0045 §5) as the focus reads them from occupant presence
//! and writes them in owner grants.

/// An occupant's role in the room, for this visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    None,
    Visitor,
    Participant,
    Moderator,
}

/// An occupant's long-lived affiliation with the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Affiliation {
    #[default]
    None,
    Outcast,
    Member,
    Admin,
    Owner,
}

impl Role {
    /// The role named by a presence `<item role>`; a missing or unknown one counts as
    /// `none`, which grants nothing.
    pub fn from_attr(value: Option<&str>) -> Self {
        match value {
            Some("visitor") => Role::Visitor,
            Some("participant") => Role::Participant,
            Some("moderator") => Role::Moderator,
            _ => Role::None,
        }
    }
}

impl Affiliation {
    /// The affiliation named by a presence `<item affiliation>`; a missing or unknown one
    /// counts as `none`, which grants nothing.
    pub fn from_attr(value: Option<&str>) -> Self {
        match value {
            Some("outcast") => Affiliation::Outcast,
            Some("member") => Affiliation::Member,
            Some("admin") => Affiliation::Admin,
            Some("owner") => Affiliation::Owner,
            _ => Affiliation::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::None => "none",
            Affiliation::Outcast => "outcast",
            Affiliation::Member => "member",
            Affiliation::Admin => "admin",
            Affiliation::Owner => "owner",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_or_missing_values_grant_nothing() {
        assert_eq!(Role::from_attr(Some("moderator")), Role::Moderator);
        assert_eq!(Role::from_attr(Some("Moderator")), Role::None);
        assert_eq!(Role::from_attr(None), Role::None);
        assert_eq!(Affiliation::from_attr(Some("owner")), Affiliation::Owner);
        assert_eq!(Affiliation::from_attr(Some("king")), Affiliation::None);
        assert_eq!(Affiliation::Owner.as_str(), "owner");
    }
}
