//! The dashboard in a real headless Chromium: after its script has run, the fleet table holds
//! the six demo targets; a screenshot is saved under the cargo target tmp dir.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{TARGETS, start};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs Chromium headless on `url` with `extra` arguments, bounded in time (a wedged browser
/// fails the test instead of hanging it).
async fn run_chromium(bin: &Path, profile: &Path, extra: &[String], url: &str) -> Output {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args([
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
    .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium did not finish within 90 s")
        .expect("chromium could not be started")
}

#[tokio::test]
async fn dashboard_shows_the_fleet_in_headless_chromium() {
    let Some(bin) = chromium() else {
        eprintln!("skipping: no chromium, chromium-browser or google-chrome on PATH");
        return;
    };
    let s = start(Some("t")).await;
    let url = format!("{}/", s.base);
    let profile = tempfile::tempdir().unwrap();

    let out = run_chromium(&bin, profile.path(), &["--dump-dom".into()], &url).await;
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The rows exist only if the script fetched /api/v1/fleet and rendered it.
    let start_tbl = dom.find(r#"<table id="fleet">"#).expect("fleet table");
    let end_tbl = start_tbl + dom[start_tbl..].find("</table>").expect("table end");
    let table = &dom[start_tbl..end_tbl];
    for (name, tier) in TARGETS {
        assert!(
            table.contains(&format!(r#"<td class="name">{name}</td>"#)),
            "{name} missing from the fleet table:\n{table}"
        );
        assert!(table.contains(&format!("<td>{tier}</td>")), "{tier}");
    }
    assert_eq!(table.matches("<tr data-target=").count(), 6, "{table}");
    assert!(table.contains(r#"class="pill unhealthy""#), "state colours");
    assert!(table.contains("<polyline"), "sparklines drawn");
    assert!(dom.contains("liveness failing: connection refused"));
    assert!(dom.contains(">live · refreshed"), "status line says live");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("medic-api-dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("dash.png");
    let _ = std::fs::remove_file(&shot);
    let out = run_chromium(
        &bin,
        profile.path(),
        &[format!("--screenshot={}", shot.display())],
        &url,
    )
    .await;
    assert!(
        out.status.success(),
        "chromium screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(png.len() > 10_000, "a real page, not a blank one");
    println!("dashboard screenshot: {}", shot.display());
    eprintln!("dashboard screenshot: {}", shot.display());
    s.stop().await;
}
