//! Notices: the exact text a visitor is shown next to the opt-in boxes, its canonical form
//! and hash, and the built-in templates a new site starts with.
//!
//! EDPB guidelines 05/2020 ¶108: the controller keeps "a copy of the information presented
//! at that time". Every consent names a notice version and the SHA-256 of its canonical
//! text; published notices are immutable.

use cornetta_shared::api::{NoticePurpose, NoticeView};
use cornetta_shared::{Lang, NoticeId, Purpose};
use sha2::{Digest, Sha256};

use crate::store::{NewNotice, Notice};

/// Longest intro or label we accept, in characters.
pub const MAX_NOTICE_TEXT_CHARS: usize = 2000;

/// The canonical text of a notice: the intro, one line per purpose with its label, and the
/// privacy policy link, each line ending in `\n`. This is what the hash covers.
pub fn canonical_text(intro: &str, purposes: &[NoticePurpose], privacy_url: Option<&str>) -> String {
    let mut text = String::new();
    text.push_str(intro.trim());
    text.push('\n');
    for p in purposes {
        text.push_str(&format!("[{}] {}\n", p.purpose.as_str(), p.label.trim()));
    }
    if let Some(url) = privacy_url {
        text.push_str(&format!("Privacy policy: {url}\n"));
    }
    text
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Validates and prepares a notice for publication.
pub fn prepare(site_id: &str, lang: Lang, intro: &str, purposes: Vec<NoticePurpose>, privacy_url: Option<String>) -> Result<NewNotice, String> {
    if intro.trim().is_empty() {
        return Err("notice intro is empty".into());
    }
    if intro.chars().count() > MAX_NOTICE_TEXT_CHARS {
        return Err(format!("notice intro is longer than {MAX_NOTICE_TEXT_CHARS} characters"));
    }
    if purposes.is_empty() {
        return Err("a notice needs at least one purpose".into());
    }
    for (i, p) in purposes.iter().enumerate() {
        if p.label.trim().is_empty() {
            return Err(format!("label of purpose {} is empty", p.purpose));
        }
        if p.label.chars().count() > MAX_NOTICE_TEXT_CHARS {
            return Err(format!("label of purpose {} is longer than {MAX_NOTICE_TEXT_CHARS} characters", p.purpose));
        }
        if purposes[..i].iter().any(|q| q.purpose == p.purpose) {
            return Err(format!("purpose {} is listed twice", p.purpose));
        }
    }
    if let Some(url) = &privacy_url
        && (!(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2000)
    {
        return Err("privacy_url must be an http(s) URL of at most 2000 characters".into());
    }
    let canonical = canonical_text(intro, &purposes, privacy_url.as_deref());
    Ok(NewNotice {
        id: NoticeId::parse(&format!("ntc_{}", uuid::Uuid::now_v7().simple())).map_err(|e| e.to_string())?,
        site_id: site_id.to_owned(),
        lang,
        intro: intro.trim().to_owned(),
        purposes,
        privacy_url,
        sha256: sha256_hex(&canonical),
        canonical_text: canonical,
        published_at: jiff::Timestamp::now(),
    })
}

/// Whether `notice` is the version of its language visitors are shown now: no notice of
/// `others` (the same site's) is a later version of that language.
pub fn is_current(notice: &Notice, others: &[Notice]) -> bool {
    !others.iter().any(|n| n.lang == notice.lang && n.version > notice.version)
}

pub fn view(notice: &Notice) -> NoticeView {
    NoticeView {
        id: notice.id.clone(),
        version: notice.version,
        lang: notice.lang,
        intro: notice.intro.clone(),
        purposes: notice.purposes.clone(),
        privacy_url: notice.privacy_url.clone(),
        sha256: notice.sha256.clone(),
        published_at: notice.published_at.to_string(),
    }
}

/// The built-in notice of a language, naming the business and WhatsApp in every label.
/// Returns `None` for languages without a template.
pub fn template(lang: Lang, business: &str) -> Option<(String, Vec<NoticePurpose>)> {
    let (intro, utility, marketing) = match lang.as_str() {
        "en" => (
            "{b} answers you on WhatsApp. Tick what you agree to; you can withdraw at any time, here or by sending STOP.",
            "I agree that {b} may send me order updates on WhatsApp",
            "I agree that {b} may send me offers and news on WhatsApp",
        ),
        "it" => (
            "{b} ti risponde su WhatsApp. Spunta ciò a cui acconsenti; puoi revocare in qualsiasi momento, qui o scrivendo STOP.",
            "Acconsento che {b} mi invii aggiornamenti sugli ordini su WhatsApp",
            "Acconsento che {b} mi invii offerte e novità su WhatsApp",
        ),
        "es" => (
            "{b} te responde por WhatsApp. Marca lo que aceptas; puedes retirarlo cuando quieras, aquí o enviando BAJA.",
            "Acepto que {b} me envíe actualizaciones de mis pedidos por WhatsApp",
            "Acepto que {b} me envíe ofertas y novedades por WhatsApp",
        ),
        "pt" => (
            "{b} responde-lhe no WhatsApp. Marque o que aceita; pode retirar a qualquer momento, aqui ou enviando PARAR.",
            "Aceito que {b} me envie atualizações de encomendas no WhatsApp",
            "Aceito que {b} me envie ofertas e novidades no WhatsApp",
        ),
        "fr" => (
            "{b} vous répond sur WhatsApp. Cochez ce que vous acceptez ; vous pouvez retirer votre accord à tout moment, ici ou en envoyant STOP.",
            "J'accepte que {b} m'envoie des informations sur mes commandes sur WhatsApp",
            "J'accepte que {b} m'envoie des offres et des nouveautés sur WhatsApp",
        ),
        "de" => (
            "{b} antwortet Ihnen auf WhatsApp. Kreuzen Sie an, womit Sie einverstanden sind; Sie können jederzeit widerrufen, hier oder mit STOP.",
            "Ich bin einverstanden, dass {b} mir Bestell-Updates über WhatsApp sendet",
            "Ich bin einverstanden, dass {b} mir Angebote und Neuigkeiten über WhatsApp sendet",
        ),
        "ar" => (
            "يرد عليك {b} عبر واتساب. اختر ما توافق عليه؛ يمكنك سحب موافقتك في أي وقت، هنا أو بإرسال STOP.",
            "أوافق على أن يرسل لي {b} تحديثات الطلبات عبر واتساب",
            "أوافق على أن يرسل لي {b} العروض والأخبار عبر واتساب",
        ),
        _ => return None,
    };
    let fill = |s: &str| s.replace("{b}", business);
    Some((
        fill(intro),
        vec![
            NoticePurpose { purpose: Purpose::Utility, label: fill(utility) },
            NoticePurpose { purpose: Purpose::Marketing, label: fill(marketing) },
        ],
    ))
}

/// Languages with a built-in template.
pub const TEMPLATE_LANGS: [&str; 7] = ["en", "it", "es", "pt", "fr", "de", "ar"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_is_one_line_per_part() {
        let purposes = vec![NoticePurpose { purpose: Purpose::Utility, label: "I agree".into() }];
        let text = canonical_text(" Hello ", &purposes, Some("https://x.example/privacy"));
        assert_eq!(text, "Hello\n[utility] I agree\nPrivacy policy: https://x.example/privacy\n");
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn every_template_names_the_business_and_whatsapp() {
        for lang in TEMPLATE_LANGS {
            let (intro, purposes) = template(Lang::parse(lang).unwrap(), "Acme Shop").unwrap();
            assert!(intro.contains("Acme Shop"), "{lang}");
            for p in purposes {
                assert!(p.label.contains("Acme Shop") && (p.label.contains("WhatsApp") || p.label.contains("واتساب")), "{lang}: {}", p.label);
            }
        }
    }

    #[test]
    fn a_notice_without_purposes_is_refused() {
        assert!(prepare("s", Lang::EN, "Hi", vec![], None).is_err());
        let dup = vec![
            NoticePurpose { purpose: Purpose::Utility, label: "a".into() },
            NoticePurpose { purpose: Purpose::Utility, label: "b".into() },
        ];
        assert_eq!(prepare("s", Lang::EN, "Hi", dup, None).unwrap_err(), "purpose utility is listed twice");
    }
}
