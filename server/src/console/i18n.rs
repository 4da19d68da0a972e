//! The withdrawal page in the widget's seven languages: a visitor who agreed in Italian
//! withdraws in Italian (GDPR Art. 7(3): as easy as giving it). Chosen from `?lang=`, then
//! the browser's `Accept-Language`, then English. The words match the widget's
//! (`widget/src/i18n.rs`): the same "reference" and "receipt" the visitor saw there.

use cornetta_shared::Lang;

/// One language's texts. `{business}`, `{reference}` and `{time}` are filled in by [`fill`].
#[derive(Debug)]
pub(super) struct Texts {
    pub lang: &'static str,
    pub title: &'static str,
    pub heading: &'static str,
    pub done_heading: &'static str,
    pub intro: &'static str,
    pub label: &'static str,
    pub button: &'static str,
    pub malformed: &'static str,
    pub unknown: &'static str,
    pub done: &'static str,
    pub unknown_site_title: &'static str,
    pub unknown_site: &'static str,
}

impl Texts {
    pub(super) fn dir(&self) -> &'static str {
        if self.lang == "ar" { "rtl" } else { "ltr" }
    }
}

const ALL: [Texts; 7] = [
    Texts {
        lang: "en",
        title: "Withdraw your consent",
        heading: "Withdraw your consent to {business}",
        done_heading: "Your consent was withdrawn",
        intro: "Enter the reference you were given when you agreed (it looks like K7QXM-2PA9R; it is in the chat message and on your receipt). \
                {business} will no longer message you on WhatsApp under that consent, and the withdrawal is recorded.",
        label: "Reference",
        button: "Withdraw my consent",
        malformed: "That is not a reference: it has ten letters and digits, like K7QXM-2PA9R.",
        unknown: "{business} has no consent with the reference {reference}. Check it against your chat message or receipt.",
        done: "Your consent with the reference {reference} was withdrawn on {time} (UTC). \
               {business} has a record of it and will no longer message you on WhatsApp under it.",
        unknown_site_title: "Unknown site",
        unknown_site: "This link names no site. Use the link the business gave you.",
    },
    Texts {
        lang: "it",
        title: "Revoca il tuo consenso",
        heading: "Revoca il tuo consenso a {business}",
        done_heading: "Il tuo consenso è stato revocato",
        intro: "Inserisci il riferimento che hai ricevuto quando hai dato il consenso (ha la forma K7QXM-2PA9R; si trova nel messaggio della chat e nella ricevuta). \
                {business} non ti scriverà più su WhatsApp in base a quel consenso, e la revoca viene registrata.",
        label: "Riferimento",
        button: "Revoca il mio consenso",
        malformed: "Questo non è un riferimento: ha dieci lettere e cifre, come K7QXM-2PA9R.",
        unknown: "{business} non ha alcun consenso con il riferimento {reference}. Confrontalo con il messaggio della chat o con la ricevuta.",
        done: "Il tuo consenso con il riferimento {reference} è stato revocato il {time} (UTC). \
               {business} ne conserva la registrazione e non ti scriverà più su WhatsApp in base a esso.",
        unknown_site_title: "Sito sconosciuto",
        unknown_site: "Questo link non indica alcun sito. Usa il link che ti ha dato l'azienda.",
    },
    Texts {
        lang: "es",
        title: "Retira tu consentimiento",
        heading: "Retira tu consentimiento a {business}",
        done_heading: "Tu consentimiento se ha retirado",
        intro: "Introduce la referencia que recibiste al dar tu consentimiento (tiene este aspecto: K7QXM-2PA9R; está en el mensaje del chat y en tu comprobante). \
                {business} dejará de escribirte por WhatsApp en virtud de ese consentimiento, y la retirada queda registrada.",
        label: "Referencia",
        button: "Retirar mi consentimiento",
        malformed: "Eso no es una referencia: tiene diez letras y cifras, como K7QXM-2PA9R.",
        unknown: "{business} no tiene ningún consentimiento con la referencia {reference}. Compruébala con el mensaje del chat o con tu comprobante.",
        done: "Tu consentimiento con la referencia {reference} se retiró el {time} (UTC). \
               {business} conserva constancia de ello y dejará de escribirte por WhatsApp en virtud de él.",
        unknown_site_title: "Sitio desconocido",
        unknown_site: "Este enlace no indica ningún sitio. Usa el enlace que te dio la empresa.",
    },
    Texts {
        lang: "pt",
        title: "Retirar o seu consentimento",
        heading: "Retirar o seu consentimento a {business}",
        done_heading: "O seu consentimento foi retirado",
        intro: "Introduza a referência que recebeu quando deu o consentimento (tem o formato K7QXM-2PA9R; está na mensagem do chat e no seu comprovativo). \
                {business} deixará de lhe enviar mensagens no WhatsApp ao abrigo desse consentimento, e a retirada fica registada.",
        label: "Referência",
        button: "Retirar o meu consentimento",
        malformed: "Isso não é uma referência: tem dez letras e algarismos, como K7QXM-2PA9R.",
        unknown: "{business} não tem nenhum consentimento com a referência {reference}. Confira-a com a mensagem do chat ou com o seu comprovativo.",
        done: "O seu consentimento com a referência {reference} foi retirado em {time} (UTC). \
               {business} tem registo disso e deixará de lhe enviar mensagens no WhatsApp ao abrigo dele.",
        unknown_site_title: "Site desconhecido",
        unknown_site: "Esta ligação não indica nenhum site. Use a ligação que a empresa lhe deu.",
    },
    Texts {
        lang: "fr",
        title: "Retirer votre consentement",
        heading: "Retirer votre consentement à {business}",
        done_heading: "Votre consentement a été retiré",
        intro: "Saisissez la référence qui vous a été donnée lorsque vous avez accepté (elle ressemble à K7QXM-2PA9R ; elle figure dans le message de la conversation et sur votre reçu). \
                {business} ne vous écrira plus sur WhatsApp au titre de ce consentement, et le retrait est enregistré.",
        label: "Référence",
        button: "Retirer mon consentement",
        malformed: "Ce n'est pas une référence : elle compte dix lettres et chiffres, comme K7QXM-2PA9R.",
        unknown: "{business} n'a aucun consentement avec la référence {reference}. Vérifiez-la dans le message de la conversation ou sur votre reçu.",
        done: "Votre consentement avec la référence {reference} a été retiré le {time} (UTC). \
               {business} en conserve la trace et ne vous écrira plus sur WhatsApp à ce titre.",
        unknown_site_title: "Site inconnu",
        unknown_site: "Ce lien ne désigne aucun site. Utilisez le lien que l'entreprise vous a donné.",
    },
    Texts {
        lang: "de",
        title: "Einwilligung widerrufen",
        heading: "Ihre Einwilligung gegenüber {business} widerrufen",
        done_heading: "Ihre Einwilligung wurde widerrufen",
        intro: "Geben Sie die Referenz ein, die Sie bei Ihrer Einwilligung erhalten haben (sie sieht aus wie K7QXM-2PA9R und steht in der Chat-Nachricht und auf Ihrem Beleg). \
                {business} schreibt Ihnen auf Grundlage dieser Einwilligung nicht mehr auf WhatsApp, und der Widerruf wird festgehalten.",
        label: "Referenz",
        button: "Meine Einwilligung widerrufen",
        malformed: "Das ist keine Referenz: Sie besteht aus zehn Buchstaben und Ziffern, etwa K7QXM-2PA9R.",
        unknown: "{business} hat keine Einwilligung mit der Referenz {reference}. Vergleichen Sie sie mit Ihrer Chat-Nachricht oder Ihrem Beleg.",
        done: "Ihre Einwilligung mit der Referenz {reference} wurde am {time} (UTC) widerrufen. \
               {business} hat dies festgehalten und schreibt Ihnen auf dieser Grundlage nicht mehr auf WhatsApp.",
        unknown_site_title: "Unbekannte Website",
        unknown_site: "Dieser Link nennt keine Website. Verwenden Sie den Link, den Ihnen das Unternehmen gegeben hat.",
    },
    Texts {
        lang: "ar",
        title: "سحب موافقتك",
        heading: "سحب موافقتك المقدَّمة إلى {business}",
        done_heading: "تم سحب موافقتك",
        intro: "أدخل المرجع الذي حصلت عليه عند موافقتك (يبدو مثل K7QXM-2PA9R، وتجده في رسالة المحادثة وفي الإيصال). \
                لن تراسلك {business} بعد الآن على واتساب بموجب تلك الموافقة، ويُسجَّل السحب.",
        label: "المرجع",
        button: "اسحب موافقتي",
        malformed: "هذا ليس مرجعًا: يتكون المرجع من عشرة أحرف وأرقام، مثل K7QXM-2PA9R.",
        unknown: "لا توجد لدى {business} موافقة بالمرجع {reference}. تحقّق منه في رسالة المحادثة أو في الإيصال.",
        done: "تم سحب موافقتك ذات المرجع {reference} في {time} (UTC). لدى {business} سجل بذلك، ولن تراسلك على واتساب بموجبها بعد الآن.",
        unknown_site_title: "موقع غير معروف",
        unknown_site: "هذا الرابط لا يشير إلى أي موقع. استخدم الرابط الذي قدّمته لك الشركة.",
    },
];

/// The texts for `wanted` (`?lang=`, or the form's hidden field) when it is one of ours,
/// else the best of `Accept-Language` (by q-value, then order), else English.
pub(super) fn texts(wanted: Option<&str>, accept_language: Option<&str>) -> &'static Texts {
    let ours = |tag: &str| Lang::parse(tag).ok().and_then(|l| ALL.iter().find(|t| t.lang == l.as_str()));
    if let Some(t) = wanted.and_then(ours) {
        return t;
    }
    let mut offered: Vec<(u16, usize, &'static Texts)> = accept_language
        .unwrap_or("")
        .split(',')
        .take(20)
        .enumerate()
        .filter_map(|(i, item)| {
            let mut parts = item.split(';');
            let texts = ours(parts.next()?)?;
            let q = parts.find_map(|p| p.trim().strip_prefix("q=")).map_or(Some(1000), quality)?;
            (q > 0).then_some((q, i, texts))
        })
        .collect();
    offered.sort_by_key(|&(q, i, _)| (std::cmp::Reverse(q), i));
    offered.first().map_or(&ALL[0], |&(_, _, t)| t)
}

/// An RFC 9110 q-value in thousandths (`0.8` → 800); `None` when malformed.
fn quality(q: &str) -> Option<u16> {
    let value: f32 = q.trim().parse().ok()?;
    (0.0..=1.0).contains(&value).then(|| (value * 1000.0).round() as u16)
}

/// `template` with `{business}`, `{reference}` and `{time}` filled in, in one pass (a
/// business named "{time}" stays as it is).
pub(super) fn fill(template: &str, business: &str, reference: &str, time: &str) -> String {
    cornetta_shared::widget::fill_placeholders(template, &[("{business}", business), ("{reference}", reference), ("{time}", time)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_asked_for_wins_then_the_browsers_best_then_english() {
        assert_eq!(texts(Some("it"), Some("de")).lang, "it");
        assert_eq!(texts(Some("pt-BR"), None).lang, "pt");
        assert_eq!(texts(Some("xx"), Some("fr-CH, fr;q=0.9, en;q=0.8")).lang, "fr");
        assert_eq!(texts(None, Some("nl, de;q=0.7, es;q=0.9")).lang, "es", "unknown nl skipped, es outranks de");
        assert_eq!(texts(None, Some("de;q=0, ar")).lang, "ar", "q=0 means not acceptable");
        assert_eq!(texts(None, Some("de;q=2, it;q=abc")).lang, "en", "malformed q-values are ignored");
        assert_eq!(texts(None, None).lang, "en");
        assert_eq!(texts(None, Some("ar")).dir(), "rtl");
    }

    #[test]
    fn every_language_has_every_placeholder_it_needs() {
        for t in &ALL {
            assert!(t.heading.contains("{business}") && t.intro.contains("{business}"), "{}", t.lang);
            assert!(t.unknown.contains("{business}") && t.unknown.contains("{reference}"), "{}", t.lang);
            assert!(t.done.contains("{business}") && t.done.contains("{reference}") && t.done.contains("{time}"), "{}", t.lang);
            assert!(t.malformed.contains("K7QXM-2PA9R"), "{}", t.lang);
        }
        assert_eq!(fill("{business} at {time} {x}", "{time}", "", "9:00"), "{time} at 9:00 {x}");
        assert_eq!(fill(ALL[1].unknown, "Acme", "K7QXM-2PA9R", ""), "Acme non ha alcun consenso con il riferimento K7QXM-2PA9R. Confrontalo con il messaggio della chat o con la ricevuta.");
    }
}
