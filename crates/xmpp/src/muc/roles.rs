//! Affiliations (a standing in the room, kept per bare JID) and roles (what an occupant may
//! do while present), XEP-0045 §5, with their wire names.

/// Ordered by privilege, so that `>=` reads as "at least".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Affiliation {
    Outcast,
    None,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outcast => "outcast",
            Self::None => "none",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "outcast" => Self::Outcast,
            "none" => Self::None,
            "member" => Self::Member,
            "admin" => Self::Admin,
            "owner" => Self::Owner,
            _ => return None,
        })
    }

    /// The role an occupant with this affiliation gets on joining.
    pub fn default_role(self) -> Role {
        if self >= Self::Admin {
            Role::Moderator
        } else {
            Role::Participant
        }
    }
}

/// Ordered by privilege, so that `>=` reads as "at least".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    None,
    Visitor,
    Participant,
    Moderator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Visitor => "visitor",
            Self::Participant => "participant",
            Self::Moderator => "moderator",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "none" => Self::None,
            "visitor" => Self::Visitor,
            "participant" => Self::Participant,
            "moderator" => Self::Moderator,
            _ => return None,
        })
    }

    /// An occupant's role once its affiliation became `affiliation`: admins and owners
    /// moderate, someone who lost that standing stops moderating, other roles are kept.
    pub fn after_affiliation_change(self, affiliation: Affiliation) -> Role {
        match (affiliation.default_role(), self) {
            (Role::Moderator, _) => Role::Moderator,
            (_, Role::Moderator) => Role::Participant,
            (_, role) => role,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        use Affiliation as A;
        for affiliation in [A::Outcast, A::None, A::Member, A::Admin, A::Owner] {
            assert_eq!(Affiliation::parse(affiliation.as_str()), Some(affiliation));
        }
        for role in [
            Role::None,
            Role::Visitor,
            Role::Participant,
            Role::Moderator,
        ] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(
            Affiliation::parse("Owner"),
            None,
            "wire names are lower case"
        );
        assert_eq!(Role::parse(""), None);
    }

    #[test]
    fn affiliation_changes_move_the_role() {
        assert_eq!(
            Role::Participant.after_affiliation_change(Affiliation::Admin),
            Role::Moderator
        );
        assert_eq!(
            Role::Moderator.after_affiliation_change(Affiliation::Member),
            Role::Participant
        );
        assert_eq!(
            Role::Visitor.after_affiliation_change(Affiliation::Member),
            Role::Visitor
        );
    }
}
