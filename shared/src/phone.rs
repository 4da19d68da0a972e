//! Phone numbers in E.164 form: the only way a number enters Cornetta.
//!
//! `PhoneNumber::from_e164` is a light check that compiles everywhere (the widget uses it);
//! `PhoneNumber::parse` (feature `phone`) runs the full libphonenumber rules: national
//! formats with a default region, international dialling prefixes, and per-country validity.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest input we try to parse. Real numbers with spacing fit in far less.
pub const MAX_PHONE_INPUT_CHARS: usize = 64;

/// A phone number in E.164 form (`+` then 7 to 15 digits), valid by construction.
///
/// `Debug` masks all but the last three digits so that a number never reaches a log in
/// full; `Display` and serde give the whole E.164 string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber {
    e164: String,
}

/// An ISO 3166-1 alpha-2 region code (`IT`, `US`), upper case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region([u8; 2]);

/// Why a phone number was refused. Messages say what failed and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number is longer than {MAX_PHONE_INPUT_CHARS} characters")]
    InputTooLong,
    #[error("phone number {0:?} has no digits")]
    NoDigits(String),
    #[error("phone number {0:?} contains letters; use digits, spaces, dashes, dots or brackets")]
    Letters(String),
    #[error(
        "phone number {0:?} has no country code; start it with + and the country code (e.g. +39), or give a region for national numbers"
    )]
    NeedsRegion(String),
    #[error("phone number {0:?} is not in E.164 form (+ followed by 7 to 15 digits)")]
    NotE164(String),
    #[error("phone number {0:?} has an unknown country code")]
    UnknownCountryCode(String),
    #[error("phone number {input:?} is too short for region {region}")]
    TooShort { input: String, region: String },
    #[error("phone number {input:?} is too long for region {region}")]
    TooLong { input: String, region: String },
    #[error("phone number {input:?} is not a valid number for region {region}")]
    InvalidForRegion { input: String, region: String },
    #[error("phone number {0:?} is not a phone number")]
    NotANumber(String),
}

/// Why a region code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    #[error("region {0:?} is not a two-letter ISO 3166 country code (e.g. IT, US)")]
    Malformed(String),
    #[error("region {0:?} is not a country libphonenumber knows")]
    Unknown(String),
}

impl PhoneNumber {
    /// Accepts only the canonical E.164 form: `+` and 7 to 15 digits, no leading zero.
    pub fn from_e164(input: &str) -> Result<Self, PhoneError> {
        let digits = input
            .strip_prefix('+')
            .ok_or_else(|| PhoneError::NotE164(input.to_owned()))?;
        let ok = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Self { e164: input.to_owned() })
        } else {
            Err(PhoneError::NotE164(input.to_owned()))
        }
    }

    /// Accepts an international number written loosely (`+39 333 123-4567`, `(+1) 650…`)
    /// without any country metadata: keeps the digits and checks the E.164 shape only.
    /// The widget uses this for numbers the page gives it; the server always uses `parse`.
    pub fn from_international_lenient(input: &str) -> Result<Self, PhoneError> {
        let trimmed = precheck(input)?;
        let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
        let international = trimmed.trim_start_matches(['(', ' ']).starts_with('+');
        let digits = match (international, digits.strip_prefix("00")) {
            (true, _) => digits,
            (false, Some(rest)) => rest.to_owned(),
            (false, None) => return Err(PhoneError::NeedsRegion(input.to_owned())),
        };
        Self::from_e164(&format!("+{digits}")).map_err(|_| PhoneError::NotE164(input.to_owned()))
    }

    /// The E.164 string, `+` included.
    pub fn as_str(&self) -> &str {
        &self.e164
    }

    /// The digits only, as wa.me wants them.
    pub fn digits(&self) -> &str {
        // `get`, not indexing: no panic path in the wasm (the leading `+` is always there).
        self.e164.get(1..).unwrap_or("")
    }

    /// The number with all but its last three digits hidden, for logs and screens.
    pub fn masked(&self) -> String {
        let digits = self.digits();
        let keep = digits.len().min(3);
        let hidden = digits.len() - keep;
        format!("+{}{}", "•".repeat(hidden), &digits[hidden..])
    }
}

/// Checks shared by both parsers: empty, too long, no digits, letters.
fn precheck(input: &str) -> Result<&str, PhoneError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    if trimmed.chars().count() > MAX_PHONE_INPUT_CHARS {
        return Err(PhoneError::InputTooLong);
    }
    if trimmed.chars().any(char::is_alphabetic) {
        return Err(PhoneError::Letters(trimmed.to_owned()));
    }
    if !trimmed.chars().any(|c| c.is_ascii_digit()) {
        return Err(PhoneError::NoDigits(trimmed.to_owned()));
    }
    Ok(trimmed)
}

#[cfg(feature = "phone")]
mod full {
    use phonenumber::metadata::DATABASE;
    use phonenumber::{Mode, ParseError, country};

    use super::{PhoneError, PhoneNumber, Region, precheck};

    impl PhoneNumber {
        /// Parses a number the way libphonenumber does: `+<country code>…` anywhere, and
        /// with `region` also national formats and that region's international prefix
        /// (`0039…` for IT). The number must be valid for its country.
        pub fn parse(input: &str, region: Option<Region>) -> Result<Self, PhoneError> {
            let trimmed = precheck(input)?;
            let international = trimmed.trim_start_matches(['(', ' ']).starts_with('+');
            let id = match region {
                Some(region) => Some(region.country_id()),
                None if international => None,
                None => return Err(PhoneError::NeedsRegion(trimmed.to_owned())),
            };
            let owned = || trimmed.to_owned();
            let number = phonenumber::parse(id, trimmed).map_err(|err| match err {
                ParseError::InvalidCountryCode if !international && region.is_none() => {
                    PhoneError::NeedsRegion(owned())
                }
                ParseError::InvalidCountryCode => PhoneError::UnknownCountryCode(owned()),
                ParseError::TooShortAfterIdd | ParseError::TooShortNsn => PhoneError::TooShort {
                    input: owned(),
                    region: region.map_or_else(|| "unknown".into(), |r| r.to_string()),
                },
                ParseError::TooLong => PhoneError::TooLong {
                    input: owned(),
                    region: region.map_or_else(|| "unknown".into(), |r| r.to_string()),
                },
                ParseError::NoNumber | ParseError::MalformedInteger(_) => {
                    PhoneError::NotANumber(owned())
                }
            })?;
            let code = number.code().value();
            let Some(metas) = DATABASE.by_code(&code) else {
                return Err(PhoneError::UnknownCountryCode(owned()));
            };
            if !number.is_valid() {
                let national_len = number.national().to_string().len() as u16;
                let meta = number
                    .country()
                    .id()
                    .and_then(|id| DATABASE.by_id(id.as_ref()))
                    .or_else(|| metas.first().copied());
                let region = meta.map_or_else(|| format!("+{code}"), |m| m.id().to_owned());
                let (min, max) = meta.map_or((0, u16::MAX), possible_lengths);
                let err = if national_len < min {
                    PhoneError::TooShort { input: owned(), region }
                } else if national_len > max {
                    PhoneError::TooLong { input: owned(), region }
                } else {
                    PhoneError::InvalidForRegion { input: owned(), region }
                };
                return Err(err);
            }
            let e164 = number.format().mode(Mode::E164).to_string();
            PhoneNumber::from_e164(&e164).map_err(|_| PhoneError::NotANumber(owned()))
        }
    }

    /// The shortest and longest national number of any kind (fixed line, mobile, toll
    /// free…) in a region's metadata; the general descriptor often lists none.
    fn possible_lengths(meta: &phonenumber::Metadata) -> (u16, u16) {
        let d = meta.descriptors();
        let kinds = [
            Some(d.general()), d.fixed_line(), d.mobile(), d.toll_free(), d.premium_rate(),
            d.shared_cost(), d.personal_number(), d.voip(), d.pager(), d.uan(),
        ];
        let lengths = kinds.into_iter().flatten().flat_map(|k| k.possible_length().iter().copied());
        lengths.fold((u16::MAX, 0), |(lo, hi), len| (lo.min(len), hi.max(len)))
    }

    impl Region {
        pub(super) fn check_known(self) -> bool {
            self.as_str().parse::<country::Id>().is_ok()
        }

        fn country_id(self) -> country::Id {
            // `parse` only builds regions that passed `check_known`.
            self.as_str().parse().unwrap_or(country::Id::US)
        }
    }
}

impl Region {
    /// Parses `it`, `IT`: two ASCII letters, and (with the `phone` feature) a country
    /// libphonenumber has metadata for.
    pub fn parse(input: &str) -> Result<Self, RegionError> {
        let bytes = input.trim().as_bytes();
        let [a, b] = bytes else {
            return Err(RegionError::Malformed(input.to_owned()));
        };
        if !(a.is_ascii_alphabetic() && b.is_ascii_alphabetic()) {
            return Err(RegionError::Malformed(input.to_owned()));
        }
        let region = Region([a.to_ascii_uppercase(), b.to_ascii_uppercase()]);
        #[cfg(feature = "phone")]
        if !region.check_known() {
            return Err(RegionError::Unknown(input.to_owned()));
        }
        Ok(region)
    }

    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = PhoneError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::from_e164(&value)
    }
}

impl From<PhoneNumber> for String {
    fn from(value: PhoneNumber) -> Self {
        value.e164
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.as_str())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Region {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Region {
    type Error = RegionError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Region> for String {
    fn from(value: Region) -> Self {
        value.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_accepts_only_the_canonical_form() {
        assert_eq!(PhoneNumber::from_e164("+393331234567").unwrap().digits(), "393331234567");
        for bad in ["393331234567", "+39 333", "+0393331234567", "+1234", "+1234567890123456", "+39a3331234"] {
            assert!(PhoneNumber::from_e164(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn debug_masks_all_but_the_last_three_digits() {
        let phone = PhoneNumber::from_e164("+393331234567").unwrap();
        let shown = format!("{phone:?}");
        assert!(!shown.contains("3331234"), "{shown}");
        assert!(shown.ends_with("567)"), "{shown}");
    }

    #[test]
    fn lenient_parsing_keeps_digits_of_international_numbers() {
        let cases = [
            ("+39 333 123 4567", "+393331234567"),
            ("+1 (650) 253-0000", "+16502530000"),
            ("0039 333 1234567", "+393331234567"),
            ("(+44) 20 7946 0958", "+442079460958"),
        ];
        for (input, want) in cases {
            assert_eq!(PhoneNumber::from_international_lenient(input).unwrap().as_str(), want, "{input}");
        }
        assert_eq!(PhoneNumber::from_international_lenient("333 123 4567"), Err(PhoneError::NeedsRegion("333 123 4567".into())));
        assert_eq!(PhoneNumber::from_international_lenient(""), Err(PhoneError::Empty));
        assert_eq!(PhoneNumber::from_international_lenient("+39 abc"), Err(PhoneError::Letters("+39 abc".into())));
    }

    #[test]
    fn region_is_two_letters_upper_cased() {
        assert_eq!(Region::parse("it").unwrap().as_str(), "IT");
        assert!(Region::parse("ITA").is_err());
        assert!(Region::parse("1T").is_err());
    }

    #[cfg(feature = "phone")]
    mod full {
        use super::*;

        fn it() -> Option<Region> {
            Some(Region::parse("IT").unwrap())
        }

        #[test]
        fn international_and_national_forms_give_one_e164() {
            let cases = [
                ("+39 333 123 4567", None, "+393331234567"),
                ("+1 (650) 253-0000", None, "+16502530000"),
                ("0039 333 1234567", it(), "+393331234567"),
                ("333 123 4567", it(), "+393331234567"),
                ("+39 333 123 4567", Some(Region::parse("US").unwrap()), "+393331234567"),
                ("+44 20 7946 0958", None, "+442079460958"),
                ("+49 30 901820", None, "+4930901820"),
            ];
            for (input, region, want) in cases {
                let got = PhoneNumber::parse(input, region).unwrap_or_else(|e| panic!("{input}: {e}"));
                assert_eq!(got.as_str(), want, "{input}");
            }
        }

        #[test]
        fn bad_numbers_say_what_is_wrong() {
            type Check = fn(&PhoneError) -> bool;
            let cases: [(&str, Option<Region>, Check); 9] = [
                ("", None, |e| matches!(e, PhoneError::Empty)),
                ("   ", None, |e| matches!(e, PhoneError::Empty)),
                ("+-()", None, |e| matches!(e, PhoneError::NoDigits(_))),
                ("+39 12", None, |e| matches!(e, PhoneError::TooShort { .. })),
                ("+999 123 456 789", None, |e| matches!(e, PhoneError::UnknownCountryCode(_))),
                ("333 123 4567", None, |e| matches!(e, PhoneError::NeedsRegion(_))),
                ("+1 212 000 0000", None, |e| matches!(e, PhoneError::InvalidForRegion { .. } | PhoneError::TooShort { .. })),
                ("+39 333 CALL ME", None, |e| matches!(e, PhoneError::Letters(_))),
                ("+39 3331234567890123", None, |e| matches!(e, PhoneError::TooLong { .. } | PhoneError::InvalidForRegion { .. })),
            ];
            for (input, region, check) in cases {
                let err = PhoneNumber::parse(input, region).expect_err(input);
                assert!(check(&err), "{input:?} gave {err:?}");
            }
        }

        #[test]
        fn too_short_message_names_the_region() {
            let err = PhoneNumber::parse("+39 12", None).unwrap_err();
            assert_eq!(err.to_string(), r#"phone number "+39 12" is too short for region IT"#);
        }

        #[test]
        fn unknown_region_codes_are_refused() {
            assert_eq!(Region::parse("XQ"), Err(RegionError::Unknown("XQ".into())));
        }
    }
}
