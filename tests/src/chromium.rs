//! Headless Chromium for the dashboard tests: find the binary, load a page with a bounded run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The first of `chromium`, `chromium-browser`, `google-chrome` on `PATH`.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// What a run of the browser gave.
#[derive(Debug)]
pub struct Run {
    /// Whether it exited with success.
    pub success: bool,
    /// Its standard output (the DOM with `--dump-dom`).
    pub stdout: String,
}

/// Loads `url` in headless Chromium `bin` with the profile directory `profile` and `extra`
/// arguments (`--dump-dom`, `--screenshot=FILE`), letting the page's scripts run for 5 s of
/// virtual time. A browser still running after `limit` is killed and reported as an error,
/// so a wedged browser fails a test instead of hanging it.
pub fn load(
    bin: &Path,
    profile: &Path,
    extra: &[String],
    url: &str,
    limit: Duration,
) -> std::io::Result<Run> {
    let out = tempfile::NamedTempFile::new()?;
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,900",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(out.reopen()?)
        .stderr(Stdio::null())
        .spawn()?;
    #[allow(clippy::disallowed_methods)] // a wall-clock bound on a real browser, in a test helper
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        #[allow(clippy::disallowed_methods)] // as above
        let late = Instant::now() > deadline;
        if late {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("chromium did not finish within {limit:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Run {
        success: status.success(),
        stdout: std::fs::read_to_string(out.path())?,
    })
}
