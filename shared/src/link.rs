//! wa.me click-to-chat links: `https://wa.me/<digits>?text=<percent-encoded UTF-8>`.
//!
//! WhatsApp's click-to-chat format (https://faq.whatsapp.com/5913398998672934): the number
//! in international form without `+`, zeros, brackets or dashes, and the prefilled message
//! URL-encoded. We encode every byte outside RFC 3986's unreserved set
//! (`A-Z a-z 0-9 - . _ ~`), so `#`, `&`, `+`, `%`, `?`, `=`, newlines and emoji survive
//! exactly: decoding the `text` parameter gives back the input, byte for byte.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::phone::PhoneNumber;

/// WhatsApp's own limit for a text message body, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;
/// The longest link we produce. 8 KB is what common servers, proxies and QR readers handle.
pub const MAX_URL_BYTES: usize = 8192;

/// Everything but RFC 3986 unreserved characters is percent-encoded.
const TEXT_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Why a link could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("text is {chars} characters long; the maximum is {MAX_TEXT_CHARS}")]
    TextTooLong { chars: usize },
    #[error("the link would be {bytes} bytes long; the maximum is {MAX_URL_BYTES} (emoji and non-Latin text take up to 12 bytes per character once encoded)")]
    UrlTooLong { bytes: usize },
}

/// A valid wa.me link for a number and an optional prefilled message.
#[derive(Clone, PartialEq, Eq)]
pub struct WaLink {
    phone: PhoneNumber,
    text: Option<String>,
    url: String,
}

impl WaLink {
    /// Builds the link. An empty text is the same as none: the link has no query string.
    pub fn new(phone: PhoneNumber, text: Option<&str>) -> Result<Self, LinkError> {
        let text = text.filter(|t| !t.is_empty());
        let mut url = format!("https://wa.me/{}", phone.digits());
        if let Some(text) = text {
            let chars = text.chars().count();
            if chars > MAX_TEXT_CHARS {
                return Err(LinkError::TextTooLong { chars });
            }
            url.push_str("?text=");
            url.extend(utf8_percent_encode(text, TEXT_ENCODE));
        }
        if url.len() > MAX_URL_BYTES {
            return Err(LinkError::UrlTooLong { bytes: url.len() });
        }
        Ok(Self { phone, text: text.map(str::to_owned), url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn phone(&self) -> &PhoneNumber {
        &self.phone
    }

    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }
}

/// Percent-encodes a message the way [`WaLink`] does.
pub fn encode_text(text: &str) -> String {
    utf8_percent_encode(text, TEXT_ENCODE).to_string()
}

/// Decodes the `text` parameter of a wa.me URL back to the message (`None` if the URL has
/// no text or it is not valid UTF-8).
pub fn decode_text(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    let value = query.split('&').find_map(|pair| pair.strip_prefix("text="))?;
    percent_decode_str(value).decode_utf8().ok().map(|s| s.into_owned())
}

impl fmt::Debug for WaLink {
    // The text may carry personal data and the phone is masked by its own Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaLink")
            .field("phone", &self.phone)
            .field("text_chars", &self.text.as_ref().map(|t| t.chars().count()))
            .finish()
    }
}

impl fmt::Display for WaLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn phone() -> PhoneNumber {
        PhoneNumber::from_e164("+393331234567").unwrap()
    }

    #[test]
    fn a_link_without_text_has_no_query_string() {
        assert_eq!(WaLink::new(phone(), None).unwrap().url(), "https://wa.me/393331234567");
        assert_eq!(WaLink::new(phone(), Some("")).unwrap().url(), "https://wa.me/393331234567");
    }

    #[test]
    fn reserved_characters_newlines_and_emoji_are_encoded() {
        let cases = [
            ("Hi", "Hi"),
            ("a b", "a%20b"),
            ("#&+%?=", "%23%26%2B%25%3F%3D"),
            ("line1\nline2", "line1%0Aline2"),
            ("crlf\r\n", "crlf%0D%0A"),
            ("ciao 👋", "ciao%20%F0%9F%91%8B"),
            ("مرحبا", "%D9%85%D8%B1%D8%AD%D8%A8%D8%A7"),
            ("-._~", "-._~"),
            ("/:@!$'()*,;", "%2F%3A%40%21%24%27%28%29%2A%2C%3B"),
        ];
        for (text, encoded) in cases {
            let link = WaLink::new(phone(), Some(text)).unwrap();
            assert_eq!(link.url(), format!("https://wa.me/393331234567?text={encoded}"), "{text:?}");
            assert_eq!(decode_text(link.url()).as_deref(), Some(text));
        }
    }

    #[test]
    fn text_at_the_limit_passes_and_one_more_character_fails() {
        let at_limit = "a".repeat(MAX_TEXT_CHARS);
        assert!(WaLink::new(phone(), Some(&at_limit)).is_ok());
        let over = "a".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(WaLink::new(phone(), Some(&over)), Err(LinkError::TextTooLong { chars: MAX_TEXT_CHARS + 1 }));
    }

    #[test]
    fn a_url_over_the_byte_limit_is_refused_even_when_the_text_fits() {
        // 1,000 emoji are 1,000 characters but 12,000 bytes once encoded.
        let emoji = "😀".repeat(1000);
        assert!(matches!(WaLink::new(phone(), Some(&emoji)), Err(LinkError::UrlTooLong { .. })));
    }

    proptest! {
        #[test]
        fn decoding_the_text_gives_the_input_back(text in "\\PC{1,300}|[\\s\\S]{1,200}") {
            let link = WaLink::new(phone(), Some(&text)).unwrap();
            prop_assert_eq!(decode_text(link.url()), Some(text.clone()));
            let query = link.url().split_once('?').unwrap().1;
            prop_assert!(query["text=".len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        }
    }
}
