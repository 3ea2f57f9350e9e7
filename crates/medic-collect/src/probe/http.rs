//! The http probe: a GET whose status must fall in a range and whose (capped) body may have
//! to contain a text.

use medic_core::ProbeOutcome;

use crate::http::{HttpError, fetch_capped};

pub(crate) async fn http_probe(
    client: &reqwest::Client,
    url: &str,
    (status_min, status_max): (u16, u16),
    body_contains: Option<&str>,
    max_body_bytes: usize,
) -> ProbeOutcome {
    // The caller bounds the whole probe; this inner deadline only has to be longer.
    let far = std::time::Duration::from_secs(24 * 3600);
    let fetched = match fetch_capped(client, url, far, max_body_bytes).await {
        Ok(f) => f,
        Err(HttpError::Timeout { .. }) => return ProbeOutcome::TimedOut,
        Err(e) => return ProbeOutcome::Failed(error_chain(&e)),
    };
    if !(status_min..=status_max).contains(&fetched.status) {
        return ProbeOutcome::Failed(format!(
            "status {}, expected {status_min}-{status_max}",
            fetched.status
        ));
    }
    if let Some(needle) = body_contains
        && !contains(&fetched.body, needle.as_bytes())
    {
        let scope = if fetched.truncated {
            "the first bytes of the body (cut at the cap)"
        } else {
            "the body"
        };
        return ProbeOutcome::Failed(format!("{scope} does not contain {needle:?}"));
    }
    ProbeOutcome::Ok
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The error and its root cause on one line, e.g. "connect to … failed: Connection refused".
///
/// The layers in between (reqwest's and hyper's wrappers) repeat the URL and add nothing a
/// reader needs.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut root = None;
    let mut source = e.source();
    while let Some(s) = source {
        root = Some(s);
        source = s.source();
    }
    if let Some(root) = root {
        let root = root.to_string();
        if !text.contains(&root) {
            text.push_str(": ");
            text.push_str(&root);
        }
    }
    text
}
