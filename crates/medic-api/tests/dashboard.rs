//! The dashboard in a real headless Chromium: after its script has run, the fleet table holds
//! the six demo targets; a screenshot is saved under the cargo target tmp dir.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TARGETS, start};

/// Loads `url` in headless Chromium off the runtime's threads (the server under test runs on
/// them): (success, stdout).
async fn run_chromium(bin: &Path, profile: &Path, extra: &[String], url: &str) -> (bool, String) {
    let (bin, profile, extra, url) = (
        bin.to_path_buf(),
        profile.to_path_buf(),
        extra.to_vec(),
        url.to_owned(),
    );
    let run = tokio::task::spawn_blocking(move || {
        medic_tests::chromium::load(&bin, &profile, &extra, &url, Duration::from_secs(90))
    })
    .await
    .expect("chromium thread")
    .expect("chromium ran");
    (run.success, run.stdout)
}

#[tokio::test]
async fn dashboard_shows_the_fleet_in_headless_chromium() {
    let Some(bin) = medic_tests::chromium::find() else {
        eprintln!("skipping: no chromium, chromium-browser or google-chrome on PATH");
        return;
    };
    let s = start(Some("t")).await;
    let url = format!("{}/", s.base);
    let profile = tempfile::tempdir().unwrap();

    let (ok, dom) = run_chromium(&bin, profile.path(), &["--dump-dom".into()], &url).await;
    assert!(ok, "chromium --dump-dom failed");
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
    // An action's output tail is its reason cell's tooltip, as text (no markup injected).
    assert!(
        dom.contains("title=\"output:\nstopping search\nsearch: &lt;b&gt;still bound&lt;/b&gt;\""),
        "{dom}"
    );

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("medic-api-dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("dash.png");
    let _ = std::fs::remove_file(&shot);
    let (ok, _) = run_chromium(
        &bin,
        profile.path(),
        &[format!("--screenshot={}", shot.display())],
        &url,
    )
    .await;
    assert!(ok, "chromium --screenshot failed");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(png.len() > 10_000, "a real page, not a blank one");
    println!("dashboard screenshot: {}", shot.display());
    eprintln!("dashboard screenshot: {}", shot.display());
    s.stop().await;
}
