//! The `http` actuator: one request with a method, URL and optional body; success is the
//! expected status (any 2xx when none is given). The response body is read up to a cap under
//! the same deadline as connect and headers, as for probes: the endpoint is untrusted.

use std::time::Duration;

use medic_core::Outcome;

/// Default bytes kept of the response body: 64 KiB.
pub const DEFAULT_BODY_CAP: usize = 64 * 1024;

/// What one HTTP action left behind.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpReport {
    /// `Success` when the status is the expected one.
    pub outcome: Outcome,
    /// The status, when a response came.
    pub status: Option<u16>,
    /// The start of the body, at most the cap.
    pub body: Vec<u8>,
    /// Whether the body was cut at the cap.
    pub truncated: bool,
}

/// One HTTP action's request.
#[derive(Clone, Copy, Debug)]
pub struct HttpRequest<'a> {
    /// Method, e.g. `POST` (case-insensitive).
    pub method: &'a str,
    /// URL.
    pub url: &'a str,
    /// Request body.
    pub body: Option<&'a str>,
    /// The status that counts as success; `None`: any 2xx.
    pub expect_status: Option<u16>,
}

/// Sends `req` with `client` within `timeout`, keeping at most `body_cap` bytes of the answer.
/// Never fails: every problem is in the outcome.
pub async fn run(
    client: &reqwest::Client,
    req: HttpRequest<'_>,
    timeout: Duration,
    body_cap: usize,
) -> HttpReport {
    let failed = |reason: String| HttpReport {
        outcome: Outcome::Failure(reason),
        status: None,
        body: Vec::new(),
        truncated: false,
    };
    let method = match reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes()) {
        Ok(m) => m,
        Err(_) => return failed(format!("invalid http method {:?}", req.method)),
    };
    let send = async {
        let mut builder = client.request(method, req.url);
        if let Some(body) = req.body {
            builder = builder.body(body.to_owned());
        }
        let mut response = builder.send().await.map_err(|e| {
            if e.is_connect() {
                format!("connect to {} failed: {}", req.url, crate::error_chain(&e))
            } else {
                format!("request to {} failed: {}", req.url, crate::error_chain(&e))
            }
        })?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            format!(
                "reading the body of {} failed: {}",
                req.url,
                crate::error_chain(&e)
            )
        })? {
            let room = body_cap - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok::<_, String>((status, body, truncated))
    };
    match tokio::time::timeout(timeout, send).await {
        Err(_elapsed) => failed(format!(
            "no complete response from {} within {timeout:?}",
            req.url
        )),
        Ok(Err(reason)) => failed(reason),
        Ok(Ok((status, body, truncated))) => {
            let ok = match req.expect_status {
                Some(want) => status == want,
                None => (200..300).contains(&status),
            };
            let outcome = if ok {
                Outcome::Success
            } else {
                let want = req
                    .expect_status
                    .map_or_else(|| "2xx".to_owned(), |s| s.to_string());
                let snippet: String = String::from_utf8_lossy(&body)
                    .trim()
                    .chars()
                    .take(200)
                    .collect();
                if snippet.is_empty() {
                    Outcome::Failure(format!("status {status}, expected {want}"))
                } else {
                    Outcome::Failure(format!("status {status}, expected {want}: {snippet}"))
                }
            };
            HttpReport {
                outcome,
                status: Some(status),
                body,
                truncated,
            }
        }
    }
}
