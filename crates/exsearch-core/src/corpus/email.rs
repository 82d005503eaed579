//! E-mail: single messages (EML) and mailboxes (MBOX), through
//! `mail-parser` (Stalwart's RFC 5322 and MIME parser: encoded words,
//! base64 and quoted-printable, 41 character sets). A message reads as its
//! header lines (From, To, Cc, Date, Subject) and its text bodies, an
//! HTML-only body turned into text; attachments are not read. In a mailbox
//! every message is a section; a single message's title is its subject.

use mail_parser::mailbox::mbox::MessageIterator;
use mail_parser::{Address, Message, MessageParser};

use super::{clean_line, ExtractedDocument, Section, Skip};

fn corrupt(kind: &'static str, detail: impl ToString) -> Skip {
    Skip::Corrupt {
        kind,
        detail: detail.to_string(),
    }
}

pub(super) fn extract_eml(bytes: &[u8]) -> Result<ExtractedDocument, Skip> {
    let message = MessageParser::default()
        .parse(bytes)
        .filter(|m| m.subject().is_some() || m.from().is_some() || m.date().is_some())
        .ok_or_else(|| corrupt("EML", "no message header (From, Date or Subject)"))?;
    Ok(ExtractedDocument {
        title: message.subject().and_then(clean_line),
        sections: vec![Section {
            ocr: false,
            page: None,
            text: message_text(&message),
        }],
    })
}

pub(super) fn extract_mbox(bytes: &[u8]) -> Result<ExtractedDocument, Skip> {
    if !bytes.starts_with(b"From ") {
        return Err(corrupt(
            "MBOX",
            "does not start with a `From ` line, as every mbox message does",
        ));
    }
    let parser = MessageParser::default();
    let sections = MessageIterator::new(bytes)
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let message = parser.parse(entry.contents())?;
            Some(Section {
                ocr: false,
                page: None,
                text: message_text(&message),
            })
        })
        .collect();
    Ok(ExtractedDocument {
        title: None,
        sections,
    })
}

/// `Name <address>, ...`, as a reader sees a header.
fn addresses(list: Option<&Address<'_>>) -> Option<String> {
    let shown: Vec<String> = list?
        .iter()
        .map(|a| match (a.name(), a.address()) {
            (Some(name), Some(address)) => format!("{name} <{address}>"),
            (Some(name), None) => name.to_owned(),
            (None, Some(address)) => address.to_owned(),
            (None, None) => String::new(),
        })
        .filter(|a| !a.is_empty())
        .collect();
    (!shown.is_empty()).then(|| shown.join(", "))
}

fn message_text(message: &Message<'_>) -> String {
    let mut out = String::new();
    let headers = [
        ("From", addresses(message.from())),
        ("To", addresses(message.to())),
        ("Cc", addresses(message.cc())),
        ("Date", message.date().map(|d| d.to_rfc3339())),
        ("Subject", message.subject().map(str::to_owned)),
    ];
    for (name, value) in headers {
        if let Some(value) = value {
            out.push_str(&format!("{name}: {value}\n"));
        }
    }
    for i in 0..message.text_body_count() {
        if let Some(body) = message.body_text(i) {
            let body = body.trim();
            if !body.is_empty() {
                out.push('\n');
                out.push_str(body);
                out.push('\n');
            }
        }
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "From: =?UTF-8?Q?Zo=C3=AB_Bront=C3=AB?= <zoe@example.org>\r
To: team@example.org\r
Date: Tue, 3 Nov 2026 09:15:00 +0100\r
Subject: =?ISO-8859-1?Q?R=E9union_=E0_Z=FCrich?=\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary=\"b1\"\r
\r
--b1\r
Content-Type: text/plain; charset=iso-8859-1\r
Content-Transfer-Encoding: quoted-printable\r
\r
La r=E9union commence =E0 dix heures, salle Gen=E8ve.\r
--b1\r
Content-Type: application/pdf; name=\"agenda.pdf\"\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQKJcfs\r
--b1--\r
";

    #[test]
    fn a_message_reads_as_its_headers_and_decoded_body_without_attachments() {
        let doc = extract_eml(MESSAGE.as_bytes()).expect("eml");
        assert_eq!(doc.title.as_deref(), Some("Réunion à Zürich"));
        let text = &doc.sections[0].text;
        assert!(
            text.starts_with("From: Zoë Brontë <zoe@example.org>\nTo: team@example.org\n"),
            "{text}"
        );
        assert!(text.contains("Date: 2026-11-03T09:15:00+01:00"), "{text}");
        assert!(
            text.ends_with("La réunion commence à dix heures, salle Genève."),
            "{text}"
        );
        assert!(!text.contains("JVBER"), "{text}");
    }

    #[test]
    fn an_html_only_message_reads_as_text() {
        let eml = "From: a@example.org\r\nSubject: Note\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>there</b></p><script>x()</script>";
        let doc = extract_eml(eml.as_bytes()).expect("eml");
        assert!(
            doc.sections[0].text.contains("Hello there"),
            "{:?}",
            doc.sections
        );
    }

    #[test]
    fn every_message_of_a_mailbox_is_a_section() {
        let mbox = format!(
            "From zoe@example.org Tue Nov  3 09:15:00 2026\n{}\nFrom bob@example.org Wed Nov  4 10:00:00 2026\nFrom: bob@example.org\nSubject: Second\n\n>From the archive: a quoted line.\n",
            MESSAGE.replace("\r\n", "\n")
        );
        let doc = extract_mbox(mbox.as_bytes()).expect("mbox");
        assert_eq!(doc.sections.len(), 2, "{:?}", doc.sections);
        assert!(doc.sections[0].text.contains("salle Genève"));
        assert!(doc.sections[1].text.contains("Subject: Second"));
        assert!(doc.sections[1]
            .text
            .contains("From the archive: a quoted line."));
    }

    #[test]
    fn what_is_not_mail_is_refused_naming_the_format() {
        assert!(matches!(
            extract_eml(b"just some words\nand more"),
            Err(Skip::Corrupt { kind: "EML", .. })
        ));
        assert!(matches!(
            extract_mbox(b"not a mailbox"),
            Err(Skip::Corrupt { kind: "MBOX", .. })
        ));
    }
}
