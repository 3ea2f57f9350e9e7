//! The one HTTP client configuration medic uses to reach targets, and a capped body read.
//!
//! Targets are untrusted: a body is read as a stream under one deadline that covers connect,
//! headers and body, and reading stops at a byte cap, so a target that streams forever or
//! trickles bytes can cost neither unbounded memory nor unbounded time.

use std::time::Duration;

/// Default cap on a response body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// A failed HTTP fetch.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The client could not be built (TLS backend, resolver).
    #[error("could not build http client")]
    Client(#[source] reqwest::Error),
    /// The URL could not be parsed or uses an unsupported scheme.
    #[error("invalid url {url}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was rejected.
        #[source]
        source: reqwest::Error,
    },
    /// Nothing accepted the connection (refused, unreachable, reset while connecting).
    #[error("connect to {url} failed")]
    Connect {
        /// The URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The request was sent but the response (status line or headers) was broken.
    #[error("request to {url} failed")]
    Request {
        /// The URL.
        url: String,
        /// The transport or protocol error.
        #[source]
        source: reqwest::Error,
    },
    /// The body broke off before it ended.
    #[error("reading the body of {url} failed")]
    Body {
        /// The URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The deadline passed before the response (headers and capped body) was in.
    #[error("no complete response from {url} within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The deadline that passed.
        timeout: Duration,
    },
}

/// A response whose body was read up to a cap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The HTTP status code.
    pub status: u16,
    /// The body, at most the cap long.
    pub body: Vec<u8>,
    /// Whether the body was longer than the cap and was cut there.
    pub truncated: bool,
    /// The `Content-Type` header, when present and readable as text.
    pub content_type: Option<String>,
}

/// The client builder every medic HTTP client starts from.
///
/// No proxies (targets are reached directly, and environment proxy variables must not reroute
/// health checks), no redirects followed (a 3xx is an answer in itself), a short connect
/// timeout as a backstop, and a small idle pool so that periodic probes reuse connections.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")))
}

/// A client built from [`client_builder`] (see [`build`]).
pub fn client() -> Result<reqwest::Client, HttpError> {
    build(client_builder)
}

/// Builds the client `make` describes, so that plain `http://` works on any machine.
///
/// `https://` URLs are verified against the system's certificate store (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` are honoured). On a machine without a single CA certificate (a minimal
/// container without `ca-certificates`) the verifier refuses to start, which would take plain
/// HTTP down with it: the client is then built trusting no certificate, so each `https://`
/// request fails with an unknown-issuer error, and a warning says why.
pub fn build(make: impl Fn() -> reqwest::ClientBuilder) -> Result<reqwest::Client, HttpError> {
    match make().build() {
        Ok(client) => Ok(client),
        Err(first) => match make().tls_certs_only(Vec::new()).build() {
            Ok(client) => {
                tracing::warn!(
                    error = %crate::probe::error_chain(&first),
                    "no usable CA certificates on this system: https:// targets will fail certificate verification"
                );
                Ok(client)
            }
            Err(_) => Err(HttpError::Client(first)),
        },
    }
}

/// GETs `url` and reads at most `max_bytes` of its body, all within `timeout`.
///
/// The body is read chunk by chunk; once the cap is reached the rest is not read (the
/// connection is dropped) and `truncated` is set. Memory held is at most the cap plus one
/// chunk. Connect, headers and body share the one deadline.
pub async fn fetch_capped(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Fetched, HttpError> {
    match tokio::time::timeout(timeout, fetch_inner(client, url, max_bytes)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(HttpError::Timeout {
            url: url.to_owned(),
            timeout,
        }),
    }
}

async fn fetch_inner(
    client: &reqwest::Client,
    url: &str,
    max_bytes: usize,
) -> Result<Fetched, HttpError> {
    let request = client
        .get(url)
        .build()
        .map_err(|source| HttpError::InvalidUrl {
            url: url.to_owned(),
            source,
        })?;
    let mut response = client.execute(request).await.map_err(|source| {
        if source.is_connect() {
            HttpError::Connect {
                url: url.to_owned(),
                source,
            }
        } else if source.is_builder() {
            HttpError::InvalidUrl {
                url: url.to_owned(),
                source,
            }
        } else {
            HttpError::Request {
                url: url.to_owned(),
                source,
            }
        }
    })?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let hint = response
        .content_length()
        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut body = Vec::with_capacity(hint.min(max_bytes).min(64 * 1024));
    let mut truncated = false;
    while let Some(chunk) = response.chunk().await.map_err(|source| HttpError::Body {
        url: url.to_owned(),
        source,
    })? {
        let room = max_bytes - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        body,
        truncated,
        content_type,
    })
}
