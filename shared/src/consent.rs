//! The consent vocabulary: purposes, actions, methods, references, site keys, notice ids.
//!
//! Purposes follow WhatsApp's message categories (utility, marketing, authentication)
//! plus `support` for conversations the person starts. Consent is granular: one choice
//! per purpose (GDPR Art. 7(2), EDPB guidelines 05/2020 ¶42).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Declares a closed set of names with `as_str`, `FromStr`, `ALL` and serde as the name.
macro_rules! closed_set {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName {
                        what: $what,
                        given: s.chars().take(40).collect(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A name outside a closed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {given:?} is unknown; expected one of: {}", expected.join(", "))]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub expected: &'static [&'static str],
}

closed_set! {
    /// What the person agrees to be contacted for.
    Purpose, "purpose" {
        Utility => "utility",
        Marketing => "marketing",
        Authentication => "authentication",
        Support => "support",
    }
}

closed_set! {
    /// What an event records. Events are append-only; status is derived from them.
    Action, "action" {
        Granted => "granted",
        Confirmed => "confirmed",
        Withdrawn => "withdrawn",
        Erased => "erased",
    }
}

closed_set! {
    /// How an event came about.
    Method, "method" {
        Widget => "widget",
        Form => "form",
        QrLanding => "qr_landing",
        Api => "api",
        Whatsapp => "whatsapp",
        Admin => "admin",
    }
}

/// Symbols of a consent reference: digits and capitals without 0, O, 1, I, L, U, so it
/// survives being read aloud, retyped or autocorrected.
pub const REFERENCE_ALPHABET: &[u8; 30] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Symbols in a reference (about 49 bits).
pub const REFERENCE_LEN: usize = 10;

/// A consent's short reference, shown as `ABCDE-FGHJK`. It travels inside the prefilled
/// WhatsApp message so that the person's first message binds the web opt-in to their number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reference(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reference {0:?} is malformed; expected {REFERENCE_LEN} characters of 2-9 and A-Z without I, L, O, U (e.g. K7QXM-2PA9R)")]
pub struct ReferenceError(pub String);

impl Reference {
    /// Accepts `k7qxm-2pa9r`, `K7QXM2PA9R`: case and one dash in the middle are forgiven.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        // As stored: nothing to clean (every stored event's reference is read this way).
        if input.len() == REFERENCE_LEN && input.bytes().all(|b| REFERENCE_ALPHABET.contains(&b)) {
            return Ok(Self(input.to_owned()));
        }
        let cleaned: String = input.trim().chars().filter(|c| *c != '-').collect::<String>().to_ascii_uppercase();
        let ok = cleaned.len() == REFERENCE_LEN && cleaned.bytes().all(|b| REFERENCE_ALPHABET.contains(&b));
        if ok && input.trim().matches('-').count() <= 1 {
            Ok(Self(cleaned))
        } else {
            Err(ReferenceError(input.chars().take(40).collect()))
        }
    }

    /// Builds a reference from random bytes (one byte per symbol, rejection-free modulo:
    /// the bias of 256 mod 30 is irrelevant for an identifier that is also checked for
    /// uniqueness).
    pub fn from_random(bytes: [u8; REFERENCE_LEN]) -> Self {
        Self(bytes.iter().map(|b| REFERENCE_ALPHABET[usize::from(*b) % REFERENCE_ALPHABET.len()] as char).collect())
    }

    /// The ten symbols without the dash, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Finds the first reference in a message, e.g. "Hi! (ref K7QXM-2PA9R)".
    pub fn find_in(text: &str) -> Option<Self> {
        Self::find_all_in(text).next()
    }

    /// Every word of a message that reads as a reference, in order. Ordinary words can
    /// (STRAWBERRY uses only the alphabet), so a caller matching against stored
    /// consents should try them all, not just the first.
    pub fn find_all_in(text: &str) -> impl Iterator<Item = Self> + '_ {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).filter_map(|word| Reference::parse(word).ok())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // split_at_checked, not indexing: no panic path (and its formatting) in the wasm.
        let (head, tail) = self.0.split_at_checked(5).unwrap_or((self.0.as_str(), ""));
        write!(f, "{head}-{tail}")
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl TryFrom<String> for Reference {
    type Error = ReferenceError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Reference> for String {
    fn from(value: Reference) -> Self {
        value.to_string()
    }
}

/// Defines an opaque identifier: a prefix and 16 to 64 characters of `[a-z0-9]`.
macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn parse(input: &str) -> Result<Self, IdError> {
                let ok = input.strip_prefix($prefix).is_some_and(|rest| {
                    (16..=64).contains(&rest.len())
                        && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                });
                if ok {
                    Ok(Self(input.to_owned()))
                } else {
                    Err(IdError { what: $what, given: input.chars().take(80).collect(), prefix: $prefix })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

/// A malformed identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {given:?} is malformed; expected {prefix} followed by 16 to 64 lower-case letters or digits")]
pub struct IdError {
    pub what: &'static str,
    pub given: String,
    pub prefix: &'static str,
}

prefixed_id! {
    /// A site's public key, put in the page's script tag. Not a secret: the server also
    /// checks the request's `Origin` against the site's allowed origins.
    SiteKey, "pk_", "site key"
}

prefixed_id! {
    /// A published notice version: immutable; a change is a new version.
    NoticeId, "ntc_", "notice id"
}

prefixed_id! {
    /// A consent event's id, time-ordered.
    EventId, "evt_", "event id"
}

/// A BCP 47 primary language subtag (`en`, `it`, `ar`), lower case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Lang([u8; 2]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("language {0:?} is not a two-letter ISO 639-1 code (e.g. en, it, ar)")]
pub struct LangError(pub String);

impl Lang {
    pub const EN: Lang = Lang(*b"en");

    /// Accepts `en`, `EN`, and the primary subtag of a longer tag (`pt-BR` → `pt`).
    pub fn parse(input: &str) -> Result<Self, LangError> {
        let primary = input.trim().split(['-', '_']).next().unwrap_or("");
        match primary.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Lang([a.to_ascii_lowercase(), b.to_ascii_lowercase()]))
            }
            _ => Err(LangError(input.chars().take(20).collect())),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("en")
    }

    /// Whether the language is written right to left.
    pub fn is_rtl(&self) -> bool {
        matches!(self.as_str(), "ar" | "he" | "fa" | "ur")
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lang({})", self.as_str())
    }
}

impl TryFrom<String> for Lang {
    type Error = LangError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Lang> for String {
    fn from(value: Lang) -> Self {
        value.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_sets_round_trip_through_their_names() {
        for p in Purpose::ALL {
            assert_eq!(p.as_str().parse::<Purpose>().unwrap(), *p);
            assert_eq!(serde_json::to_string(p).unwrap(), format!("\"{}\"", p.as_str()));
        }
        let err = "promo".parse::<Purpose>().unwrap_err();
        assert_eq!(err.to_string(), r#"purpose "promo" is unknown; expected one of: utility, marketing, authentication, support"#);
    }

    #[test]
    fn references_forgive_case_and_the_dash() {
        let r = Reference::parse("k7qxm-2pa9r").unwrap();
        assert_eq!(r.to_string(), "K7QXM-2PA9R");
        assert_eq!(Reference::parse("K7QXM2PA9R").unwrap(), r);
        for bad in ["", "K7QXM-2PA9", "K7QXM-2PA9RR", "K0QXM-2PA9R", "KIQXM-2PA9R", "K7-QX-M2PA9R"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_reference_is_found_inside_a_message() {
        let r = Reference::find_in("Hi! I have a question about Shoes (ref K7QXM-2PA9R)").unwrap();
        assert_eq!(r.as_str(), "K7QXM2PA9R");
        assert!(Reference::find_in("Hi! No reference here, STOPPING").is_none());
        let all: Vec<String> = Reference::find_all_in("Strawberry jam (ref K7QXM-2PA9R)").map(|r| r.to_string()).collect();
        assert_eq!(all, ["STRAW-BERRY", "K7QXM-2PA9R"]);
    }

    #[test]
    fn random_references_use_only_the_alphabet() {
        let r = Reference::from_random([0, 29, 30, 255, 128, 7, 8, 9, 100, 200]);
        assert!(Reference::parse(r.as_str()).is_ok());
    }

    #[test]
    fn site_keys_need_their_prefix() {
        assert!(SiteKey::parse("pk_0123456789abcdef").is_ok());
        assert!(SiteKey::parse("sk_0123456789abcdef").is_err());
        assert!(SiteKey::parse("pk_short").is_err());
        assert!(SiteKey::parse("pk_0123456789ABCDEF").is_err());
    }

    #[test]
    fn languages_keep_the_primary_subtag() {
        assert_eq!(Lang::parse("pt-BR").unwrap().as_str(), "pt");
        assert!(Lang::parse("ar").unwrap().is_rtl());
        assert!(Lang::parse("english").is_err());
    }
}
