//! The bearer token: where it comes from, how it is kept out of logs, how it is compared.

use std::fmt;
use std::path::Path;

use crate::Error;

/// The environment variable read by [`token_from`] when no token file is given.
pub const TOKEN_ENV: &str = "MEDIC_API_TOKEN";

/// A secret string. Its `Debug` and `Display` print `***`, so a secret that ends up in a log
/// line or an error message does not leak; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call sites are easy to audit by grepping for `expose`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` equals the secret, in time that does not depend on where the two
    /// first differ (see [`constant_time_eq`]).
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), presented)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Compares two byte strings without an early exit: every byte position up to the longer
/// length is visited and the differences are OR-folded, so the time taken reveals at most the
/// longer length, never the length of the matching prefix. Lengths that differ make the
/// result false through the same fold. (Own code rather than the `subtle` crate: the fold is
/// ten lines and `black_box` keeps the optimiser from turning it back into a short-circuit.)
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff: u8 = u8::from(a.len() != b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// The API token: the contents of `file` when given (surrounding whitespace trimmed, so a
/// trailing newline does not count), else the environment variable [`TOKEN_ENV`], else none.
///
/// With no token the mutating endpoints refuse every request (403); they are never open.
///
/// # Errors
/// [`Error::TokenFile`] when the file cannot be read, [`Error::EmptyToken`] when it holds
/// only whitespace (an empty token would be a guessable one). An empty or non-UTF-8
/// environment variable counts as unset.
pub fn token_from(file: Option<&Path>) -> Result<Option<Secret>, Error> {
    token_from_parts(file, std::env::var(TOKEN_ENV).ok())
}

fn token_from_parts(file: Option<&Path>, env: Option<String>) -> Result<Option<Secret>, Error> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| Error::TokenFile {
            path: path.to_path_buf(),
            source,
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(Error::EmptyToken {
                path: path.to_path_buf(),
            });
        }
        return Ok(Some(Secret::new(token)));
    }
    Ok(env
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .map(Secret::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"ab\0"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn token_sources_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "  s3cret\n").unwrap();
        let t = token_from_parts(Some(&f), Some("env".into())).unwrap();
        assert_eq!(t.unwrap().expose(), "s3cret");
        let t = token_from_parts(None, Some("env".into())).unwrap();
        assert_eq!(t.unwrap().expose(), "env");
        assert!(token_from_parts(None, Some(" ".into())).unwrap().is_none());
        assert!(token_from_parts(None, None).unwrap().is_none());
        std::fs::write(&f, "\n").unwrap();
        assert!(matches!(
            token_from_parts(Some(&f), None),
            Err(Error::EmptyToken { .. })
        ));
        assert!(matches!(
            token_from_parts(Some(&dir.path().join("missing")), None),
            Err(Error::TokenFile { .. })
        ));
    }
}
