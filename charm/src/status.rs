//! The unit's workload status.

use std::fmt;

/// The statuses a charm may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusKind {
    Maintenance,
    Blocked,
    Waiting,
    Active,
}

impl StatusKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Maintenance => "maintenance",
            StatusKind::Blocked => "blocked",
            StatusKind::Waiting => "waiting",
            StatusKind::Active => "active",
        }
    }

    pub fn parse(s: &str) -> Option<StatusKind> {
        match s {
            "maintenance" => Some(StatusKind::Maintenance),
            "blocked" => Some(StatusKind::Blocked),
            "waiting" => Some(StatusKind::Waiting),
            "active" => Some(StatusKind::Active),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Status {
    pub kind: StatusKind,
    pub message: String,
}

impl Status {
    pub fn new(kind: StatusKind, message: impl Into<String>) -> Status {
        Status {
            kind,
            message: message.into(),
        }
    }
    pub fn maintenance(message: impl Into<String>) -> Status {
        Status::new(StatusKind::Maintenance, message)
    }
    pub fn blocked(message: impl Into<String>) -> Status {
        Status::new(StatusKind::Blocked, message)
    }
    pub fn waiting(message: impl Into<String>) -> Status {
        Status::new(StatusKind::Waiting, message)
    }
    pub fn active(message: impl Into<String>) -> Status {
        Status::new(StatusKind::Active, message)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}
