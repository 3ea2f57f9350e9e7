//! Just enough HTTP client for the self-load and the dependency check: a GET that returns the
//! status code, under one deadline, reading at most the status line.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An `http://host:port/path` URL, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// `host:port`.
    pub authority: String,
    /// The path, `/health` when the URL has none.
    pub path: String,
}

impl HttpUrl {
    /// Parses a plain-HTTP URL; the path defaults to `/health`.
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || !authority.contains(':') {
            return Err(format!("{url:?}: expected http://host:port[/path]"));
        }
        let path = if path.is_empty() || path == "/" {
            "/health"
        } else {
            path
        };
        Ok(HttpUrl {
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// GETs `path` from `authority` and returns the response status, or why there is none.
pub async fn get_status(authority: &str, path: &str, timeout: Duration) -> Result<u16, String> {
    tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect(authority)
            .await
            .map_err(|e| format!("connect {authority}: {e}"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = [0u8; 256];
        let mut len = 0;
        // The status line fits in 256 bytes; anything after it is not needed.
        while len < buf.len() && !buf[..len].contains(&b'\n') {
            let n = stream
                .read(&mut buf[len..])
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                break;
            }
            len += n;
        }
        let line = std::str::from_utf8(&buf[..len]).map_err(|_| "status line is not UTF-8")?;
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("bad status line {:?}", line.lines().next().unwrap_or("")))
    })
    .await
    .map_err(|_| format!("timed out after {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            HttpUrl::parse("http://127.0.0.1:8101").unwrap(),
            HttpUrl {
                authority: "127.0.0.1:8101".into(),
                path: "/health".into()
            }
        );
        assert_eq!(
            HttpUrl::parse("http://127.0.0.1:8101/ready").unwrap().path,
            "/ready"
        );
        assert!(HttpUrl::parse("https://x:1").is_err());
        assert!(HttpUrl::parse("http://nohostport/").is_err());
    }
}
