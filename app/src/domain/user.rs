//! Users: a normalised email that is unique, and a password that is only ever kept hashed.

use super::error::DomainError;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub String);

impl UserId {
    pub fn generate() -> Self {
        UserId(ulid::Ulid::new().to_string())
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Trimmed and lowercased, so `Ann@Example.com ` and `ann@example.com` are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email.chars().any(char::is_whitespace)
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if valid {
            Ok(Email(email))
        } else {
            Err(DomainError::invalid(
                "email",
                "must be an email address such as ann@example.com",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed, checked for length, characters and strength; it never leaves this
/// process unhashed.
pub struct Password(String);

pub const PASSWORD_MIN: usize = 12;
/// Bounds the hashing work one request can cause.
pub const PASSWORD_MAX: usize = 1024;
/// zxcvbn's score a password needs: 3 is "safely unguessable", about 10^8 guesses or more.
const PASSWORD_SCORE: u8 = 3;
/// zxcvbn's work grows with the length; past this it has seen enough to judge.
const PASSWORD_JUDGED: usize = 100;

impl Password {
    /// `email` is the account's: a password made of it is as weak as a common one.
    pub fn parse(raw: &str, email: &Email) -> Result<Self, DomainError> {
        let chars = raw.chars().count();
        if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&chars) {
            return Err(DomainError::invalid(
                "password",
                format!("must be {PASSWORD_MIN} to {PASSWORD_MAX} characters"),
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "password",
                "must not hold control characters (tabs, line breaks, NUL, ...)",
            ));
        }
        let judged: String = raw.chars().take(PASSWORD_JUDGED).collect();
        let (local, _) = email.as_str().split_once('@').unwrap_or_default();
        let entropy = zxcvbn::zxcvbn(&judged, &[email.as_str(), local]);
        if (entropy.score() as u8) < PASSWORD_SCORE {
            let feedback = entropy.feedback();
            let why = feedback
                .and_then(|f| f.warning())
                .map(|w| format!("{}. ", w.to_string().trim_end_matches('.')))
                .unwrap_or_default();
            let how = feedback
                .and_then(|f| f.suggestions().first())
                .map(|s| s.to_string())
                .unwrap_or_else(|| "Add another word or two; uncommon words are better.".into());
            return Err(DomainError::invalid(
                "password",
                format!("is too easy to guess: {why}{how}"),
            ));
        }
        Ok(Password(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// What a user may do: every signed-up user reads, an editor also creates and updates products,
/// an admin also deletes them and grants roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Editor,
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "reader" => Ok(Role::Reader),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            _ => Err(DomainError::invalid(
                "role",
                "must be reader, editor or admin",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may make an account: anyone, those an admin invited, or nobody (a protected environment's
/// default). The admins the environment names may always sign up: that is how the first comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signup {
    Open,
    Invite,
    Closed,
}

impl Signup {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "open" => Ok(Signup::Open),
            "invite" => Ok(Signup::Invite),
            "closed" => Ok(Signup::Closed),
            _ => Err(DomainError::invalid(
                "signup",
                "must be open, invite or closed",
            )),
        }
    }
}

/// An admin's word that `email` may sign up where sign-up is by invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub email: Email,
    pub invited_by: UserId,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub created_at: OffsetDateTime,
    pub role: Role,
}

/// Who asks for a change, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: UserId,
    pub role: Role,
}

impl Actor {
    /// The import path: messages from the import topic, which only its publishers reach.
    pub fn import() -> Self {
        Actor {
            id: UserId("import".into()),
            role: Role::Editor,
        }
    }

    /// Ok when the actor's role is at least `needed`; else Forbidden, saying what `action` needs.
    pub fn may(&self, needed: Role, action: &str) -> Result<(), DomainError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(DomainError::Forbidden(format!(
                "{action} needs the {needed} role, and you have the {} role: ask an admin",
                self.role
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a@b@c.com",
            "ann@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn password(raw: &str) -> Result<Password, DomainError> {
        Password::parse(raw, &Email::parse("ann.lee@example.com").unwrap())
    }

    #[test]
    fn passwords_need_twelve_characters_and_never_print() {
        assert!(password("elevenchars").is_err());
        assert!(password("plover quartz ferry").is_ok());
        assert!(password("üñøç∂ß¬∆˚ƒ©").is_err(), "eleven");
        assert!(password(&"x".repeat(PASSWORD_MAX + 1)).is_err());
        let p = password("plover quartz ferry").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }

    #[test]
    fn guessable_passwords_and_control_characters_are_refused_saying_why() {
        for weak in [
            "aaaaaaaaaaaa",
            "123456789012",
            "password1234",
            "            ",
            "ann.lee@example.com",
            "annleeannlee",
            "qwertyuiopas",
        ] {
            let err = password(weak).unwrap_err().to_string();
            assert!(
                err.starts_with("password: is too easy to guess: "),
                "{weak:?}: {err}"
            );
            assert!(!err.contains(".."), "{err}");
        }
        for control in [
            "\0".repeat(12),
            "plover quartz\tferry".into(),
            "plover\u{7}quartz ferry".into(),
        ] {
            let err = password(&control).unwrap_err().to_string();
            assert!(err.contains("control characters"), "{control:?}: {err}");
        }
    }

    #[test]
    fn roles_grow_reader_editor_admin() {
        let editor = Actor {
            id: UserId("u".into()),
            role: Role::Editor,
        };
        assert!(editor.may(Role::Editor, "creating a product").is_ok());
        assert_eq!(
            editor
                .may(Role::Admin, "deleting a product")
                .unwrap_err()
                .to_string(),
            "deleting a product needs the admin role, and you have the editor role: ask an admin"
        );
        assert_eq!(Role::parse("admin"), Ok(Role::Admin));
        assert!(Role::parse("root").is_err());
    }
}
