//! `GET /runbook`: `docs/runbook.md`, built into the binary, as one HTML page. Its headings
//! carry the anchors GitHub gives them ("### Reason: stale_read" is `#reason-stale_read`,
//! "## S3ReplicationStalled" is `#s3replicationstalled`), so the status page's links and the
//! alerts' runbook URLs work against the daemon itself, with no network at 3 AM.

use std::sync::OnceLock;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

/// The runbook's Markdown, as shipped with this build.
pub const MARKDOWN: &str = include_str!("../../docs/runbook.md");

/// The page, rendered once.
pub fn page() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| {
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>s3canary runbook</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:60em;margin:0.8em auto;padding:0 0.8em;color:#111;line-height:1.4}}\
code{{background:#f3f3f3;padding:0 3px}} pre{{background:#f3f3f3;padding:0.5em;overflow-x:auto}} :target{{background:#fff3c4}}</style>\
</head><body><p><a href=\"/\">← status page</a></p>\n{}</body></html>\n",
            html(MARKDOWN)
        )
    })
}

/// `markdown` as HTML, every heading with its GitHub anchor as `id`.
pub fn html(markdown: &str) -> String {
    let mut events: Vec<Event> = Vec::new();
    let mut heading: Option<(usize, String)> = None;
    for e in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        match &e {
            Event::Start(Tag::Heading { .. }) => heading = Some((events.len(), String::new())),
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, text)) = &mut heading {
                    text.push_str(t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((at, text)) = heading.take()
                    && let Event::Start(Tag::Heading { id, .. }) = &mut events[at]
                {
                    *id = Some(CowStr::from(anchor(&text)));
                }
            }
            _ => {}
        }
        events.push(e);
    }
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events.into_iter());
    out
}

/// GitHub's anchor of a heading: lowercase, punctuation other than `-` and `_` dropped,
/// spaces as `-`.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Reason;

    #[test]
    fn every_reason_and_alert_anchor_is_on_the_page() {
        assert_eq!(anchor("Reason: stale_read"), "reason-stale_read");
        assert_eq!(anchor("S3ReplicationStalled"), "s3replicationstalled");
        let page = page();
        for r in Reason::ALL {
            let id = format!("id=\"{}\"", r.anchor());
            assert!(page.contains(&id), "{id} missing");
        }
        assert!(page.contains("id=\"s3replicationstalled\""));
    }
}
