//! Opt-out keywords: a message that is, as a whole, one of them withdraws consent.
//!
//! Matching ignores case, accents (NFKD, combining marks dropped: "Arrêt" = "ARRET"),
//! punctuation, emoji and spacing around and between words ("opt-out!" = "OPT OUT"), but
//! never matches a keyword inside a longer message ("please stop the order" is not STOP).
//! The built-in list follows the US revocation keywords (FCC 24-24, 47 CFR
//! 64.1200(a)(12): stop, quit, end, revoke, opt out, cancel, unsubscribe; plus CTIA's
//! STOP ALL) and their Italian, Spanish, Portuguese, French and German equivalents. Sites
//! can replace it. Italian FINE is left out on purpose: as a whole message an English
//! speaker's "Fine." means "OK", and withdrawing on it would be wrong more often than right.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The built-in keywords, as people type them (normalised before use).
pub const DEFAULT_KEYWORDS: &[&str] = &[
    // English
    "STOP", "STOP ALL", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPT OUT", "OPTOUT",
    // Italian
    "BASTA", "ANNULLA", "DISISCRIVIMI", "DISISCRIVI", "CANCELLAMI", "REVOCA", "ESCI", "DISDICI", "STOP TUTTO",
    // Spanish
    "BAJA", "DAR DE BAJA", "DARME DE BAJA", "PARAR", "DETENER", "CANCELAR", "ANULAR", "REVOCAR", "SALIR", "FIN",
    "NO MÁS", "DESUSCRIBIR", "CANCELAR SUSCRIPCIÓN",
    // Portuguese
    "PARE", "SAIR", "REVOGAR", "DESCADASTRAR", "DESCADASTRE", "DESINSCREVER", "CANCELAR INSCRIÇÃO", "FIM", "CHEGA",
    // French
    "ARRÊT", "ARRÊTER", "DÉSABONNER", "DÉSABONNEMENT", "DÉSINSCRIRE", "DÉSINSCRIPTION", "ANNULER", "RÉVOQUER", "QUITTER",
    // German
    "STOPP", "ABMELDEN", "ABBESTELLEN", "KÜNDIGEN", "BEENDEN", "ENDE", "WIDERRUFEN", "WIDERRUF", "AUFHÖREN", "AUSTRAGEN",
    "STORNIEREN",
];

/// Longest keyword, in characters, and most keywords a site may set.
pub const MAX_KEYWORD_CHARS: usize = 64;
pub const MAX_KEYWORDS: usize = 200;
/// Longest opt-out reply (a WhatsApp text message holds 4096 characters).
pub const MAX_REPLY_CHARS: usize = 1024;
/// Messages longer than this are never a keyword; saves normalising long texts.
const MAX_MATCH_CHARS: usize = 200;

/// Upper case, accents dropped, every run of non-alphanumeric characters made one space,
/// trimmed.
pub fn normalise(text: &str) -> String {
    let folded: String = text.nfkd().filter(|c| !is_combining_mark(*c)).collect::<String>().to_uppercase();
    let mut out = String::with_capacity(folded.len());
    for c in folded.chars() {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// The built-in list, normalised, without duplicates, in order.
pub fn default_keywords() -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(DEFAULT_KEYWORDS.len());
    for k in DEFAULT_KEYWORDS {
        let k = normalise(k);
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// Checks and normalises a keyword a site sets.
pub fn parse_keyword(input: &str) -> Result<String, String> {
    let k = normalise(input);
    if k.is_empty() {
        return Err(format!("opt-out keyword {:?} has no letters or digits", input.chars().take(40).collect::<String>()));
    }
    if k.chars().count() > MAX_KEYWORD_CHARS {
        return Err(format!("opt-out keyword {:?}… is longer than {MAX_KEYWORD_CHARS} characters", input.chars().take(40).collect::<String>()));
    }
    Ok(k)
}

/// Checks a site's list: normalised, without duplicates, at most `MAX_KEYWORDS`.
pub fn parse_keywords<S: AsRef<str>>(inputs: &[S]) -> Result<Vec<String>, String> {
    if inputs.len() > MAX_KEYWORDS {
        return Err(format!("a site may set at most {MAX_KEYWORDS} opt-out keywords"));
    }
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        let k = parse_keyword(input.as_ref())?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

pub fn parse_reply(input: &str) -> Result<String, String> {
    let reply = input.trim();
    if reply.is_empty() {
        return Err("the opt-out reply is empty; leave it out for no reply".into());
    }
    if reply.chars().count() > MAX_REPLY_CHARS {
        return Err(format!("the opt-out reply is longer than {MAX_REPLY_CHARS} characters"));
    }
    Ok(reply.to_owned())
}

/// Whether the whole message is one of `keywords` (normalised ones).
pub fn is_opt_out(message: &str, keywords: &[String]) -> bool {
    if message.chars().count() > MAX_MATCH_CHARS {
        return false;
    }
    let m = normalise(message);
    !m.is_empty() && keywords.contains(&m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_message_keywords_match_in_any_case_accent_and_punctuation() {
        let keywords = default_keywords();
        for yes in [
            "STOP", "stop", " Stop! ", "STOP ALL", "stop  all", "Unsubscribe.", "cancel", "End", "quit", "REVOKE", "opt out",
            "Opt-Out", "optout", "🛑 stop 🛑", "Basta!", "annulla", "Disiscrivimi", "baja", "Darme de baja", "no más", "No mas",
            "Cancelar suscripción", "SAIR", "Cancelar inscrição", "fim", "Arrêt", "arret", "ARRÊTER", "désabonner",
            "Desinscription", "révoquer", "Stopp", "abmelden", "Kündigen", "aufhören", "Ende",
        ] {
            assert!(is_opt_out(yes, &keywords), "{yes}");
        }
    }

    #[test]
    fn keywords_inside_longer_messages_or_look_alikes_do_not_match() {
        let keywords = default_keywords();
        for no in [
            "", "   ", "!!!", "please stop the order", "STOPPING", "stop it", "Fine", "fine.", "I want to cancel my order",
            "Hi! I have a question (ref K7QXM-2PA9R)", "end of story", "s t o p", "STOP 2",
            // Accents are dropped, not transliterated: KUENDIGEN is not KÜNDIGEN.
            "KUENDIGEN",
        ] {
            assert!(!is_opt_out(no, &keywords), "{no}");
        }
        assert!(!is_opt_out(&"stop ".repeat(100), &keywords));
    }

    #[test]
    fn normalising_folds_case_accents_and_separators() {
        let cases = [
            ("Arrêt", "ARRET"),
            ("  opt-out!! ", "OPT OUT"),
            ("Straße", "STRASSE"),
            ("CANCELAR INSCRIÇÃO", "CANCELAR INSCRICAO"),
            ("ｓｔｏｐ", "STOP"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(normalise(input), want, "{input}");
        }
    }

    #[test]
    fn site_keywords_are_checked() {
        assert_eq!(parse_keywords(&["Halt", "halt!", "Fine"]).unwrap(), ["HALT", "FINE"]);
        assert!(parse_keywords(&["!!"]).is_err());
        assert!(parse_keywords(&["x".repeat(65)]).is_err());
        assert!(parse_keywords(&vec!["a"; MAX_KEYWORDS + 1]).is_err());
        assert!(parse_reply("  ").is_err());
        assert_eq!(parse_reply(" You will get no more messages. ").unwrap(), "You will get no more messages.");
    }

    #[test]
    fn the_built_in_list_has_no_duplicates_after_normalising() {
        let all = default_keywords();
        assert!(all.len() > 50);
        assert!(all.contains(&"CANCELAR".to_owned()));
        assert!(!all.contains(&"FINE".to_owned()));
    }
}
