//! The `medic` binary as a user runs it: exit codes and output of `validate`, `check` and
//! `simulate`.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

fn medic() -> Command {
    Command::new(env!("CARGO_BIN_EXE_medic"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `medic check --fleet FLEET --policies <shipped>`.
fn check(fleet: &std::path::Path) -> Command {
    let mut cmd = medic();
    cmd.arg("check")
        .arg("--fleet")
        .arg(fleet)
        .arg("--policies")
        .arg(repo().join("policies"));
    cmd
}

#[test]
fn validate_accepts_the_shipped_files() {
    let out = medic()
        .current_dir(repo())
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("ok: 5 targets in 3 tiers"), "{stdout}");
}

#[test]
fn validate_reports_every_error_with_its_location_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    let mut f = std::fs::File::create(&fleet).unwrap();
    writeln!(f, "targets:").unwrap();
    writeln!(f, "  - name: api").unwrap();
    writeln!(f, "    probes:").unwrap();
    writeln!(
        f,
        "      liveness: {{ tcp: {{ addr: \"127.0.0.1:1\" }}, every: soon }}"
    )
    .unwrap();
    writeln!(f, "    depends_on: [dbb]").unwrap();
    drop(f);
    let out = medic()
        .arg("validate")
        .arg("--fleet")
        .arg(&fleet)
        .arg("--policies")
        .arg(repo().join("policies"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let located: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("fleet.yaml:"))
        .collect();
    assert_eq!(located.len(), 2, "both errors, each located:\n{stderr}");
    assert!(
        located[0].contains("fleet.yaml:4:")
            && located[0].contains("targets[0].probes.liveness.every"),
        "{stderr}"
    );
    assert!(
        located[1].contains("fleet.yaml:5:") && located[1].contains("targets[0].depends_on[0]"),
        "{stderr}"
    );
}

#[test]
fn check_json_gives_live_and_dead_targets_their_states() {
    let live = TcpListener::bind("127.0.0.1:0").unwrap();
    let live_addr = live.local_addr().unwrap();
    // A port that was bound and released: nothing listens there.
    let dead_addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    std::fs::write(
        &fleet,
        format!(
            "targets:\n  - name: up\n    probes: {{ liveness: {{ tcp: {{ addr: \"{live_addr}\" }} }} }}\n  - name: down\n    probes: {{ liveness: {{ tcp: {{ addr: \"{dead_addr}\" }} }} }}\n"
        ),
    )
    .unwrap();
    let out = check(&fleet).arg("--json").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let state = |name: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == name)
            .map(|t| t["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state("up").as_deref(), Some("healthy"));
    assert_eq!(state("down").as_deref(), Some("unhealthy"));
    let down = json
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "down")
        .unwrap();
    let probe = &down["probes"][0];
    assert_eq!(probe["level"], "liveness");
    assert_eq!(probe["kind"], "tcp");
    assert_eq!(probe["ok"], false);
    assert!(
        probe["error"].as_str().unwrap().contains("refused"),
        "{probe}"
    );
    drop(live);
}

#[test]
fn check_with_a_broken_fleet_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    std::fs::write(&fleet, "targets: [ { name: a, tier: gold } ]\n").unwrap();
    let out = check(&fleet).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn simulate_json_reports_a_reproducible_run_with_no_violation() {
    let run = || {
        let out = medic()
            .current_dir(repo())
            .args(["simulate", "--targets", "200", "--days", "2", "--seed", "7"])
            .arg("--json")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report
    };
    let a = run();
    assert_eq!(a["violations"].as_u64(), Some(0), "{a}");
    assert!(a["faults"].as_u64().unwrap() > 0, "{a}");
    assert!(a["incidents"].as_u64().unwrap() > 0, "{a}");
    assert!(a["healed_by_engine"].as_u64().unwrap() > 0, "{a}");
    assert!(a["failed_actions_per_incident"].is_number(), "{a}");
    // the same seed gives the same report, wall time aside
    let mut b = run();
    let mut a = a;
    for r in [&mut a, &mut b] {
        r.as_object_mut()
            .unwrap()
            .retain(|k, _| !k.starts_with("wall"));
    }
    assert_eq!(a, b);
}

#[test]
fn simulate_compare_runs_two_policy_directories_on_the_same_faults() {
    // b tolerates 32 crashes in 15 min instead of the shipped 4: it never gives up on a
    // crash loop, so its loops end on the escalation ladder instead
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(repo().join("policies/tiers.yaml")).unwrap();
    let patched = shipped.replacen(
        "crash_loop: { restarts: 4, window: 15m }",
        "crash_loop: { restarts: 32, window: 15m }",
        1,
    );
    assert_ne!(
        patched, shipped,
        "the shipped default crash_loop line moved"
    );
    std::fs::write(dir.path().join("tiers.yaml"), patched).unwrap();
    let out = medic()
        .current_dir(repo())
        .args([
            "simulate",
            "--targets",
            "1000",
            "--days",
            "2",
            "--seed",
            "7",
        ])
        .arg("--compare")
        .arg("policies")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("same faults (seed 7"), "{stdout}");
    let row = |name: &str| -> Vec<f64> {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{stdout}"));
        line.split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let faults = row("faults");
    assert_eq!(faults[0], faults[1], "the same faults on both sides");
    let gave_up = row("gave_up");
    assert!(gave_up[0] > 0.0 && gave_up[1] == 0.0, "gave_up {gave_up:?}");
    assert_eq!(gave_up[2], gave_up[1] - gave_up[0], "the b - a column");
    assert_eq!(&row("violations")[..2], [0.0, 0.0]);
}

/// An `https://` probe is a real TLS client: it trusts the system's roots (here the test's own
/// CA, given the standard way, through `SSL_CERT_FILE`) and fails on a certificate it cannot
/// verify. Needs `openssl` (to make the certificate) and `python3` (to serve HTTPS); skips with
/// the reason when either is missing.
#[test]
fn check_probes_https_targets_and_refuses_an_untrusted_certificate() {
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
            || Command::new(tool)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
    };
    for tool in ["openssl", "python3"] {
        if !have(tool) {
            eprintln!("skipping: `{tool}` is not installed (.ci/run installs it)");
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name);
    let (ca, cert, key) = (file("ca.pem"), file("cert.pem"), file("key.pem"));
    std::fs::write(
        file("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    // A CA, and a server certificate for 127.0.0.1 signed by it.
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=medic test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ],
    ];
    for args in steps {
        let made = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    // One HTTPS server on a free port, answering 200 "ok"; it prints its port first.
    let server = "import http.server, ssl, sys\n\
        class H(http.server.BaseHTTPRequestHandler):\n\
        \x20   def do_GET(self):\n\
        \x20       self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers(); self.wfile.write(b'ok')\n\
        \x20   def log_message(self, *a): pass\n\
        s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)\n\
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain(sys.argv[1], sys.argv[2])\n\
        s.socket = c.wrap_socket(s.socket, server_side=True)\n\
        print(s.server_address[1], flush=True)\n\
        s.serve_forever()\n";
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(server)
        .arg(&cert)
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port: u16 = line.trim().parse().expect("the server prints its port");
    let fleet = dir.path().join("fleet.yaml");
    std::fs::write(
        &fleet,
        format!(
            "targets:\n  - name: secure\n    probes: {{ liveness: {{ http: {{ url: \"https://127.0.0.1:{port}/health\" }} }} }}\n"
        ),
    )
    .unwrap();
    // `trust`: the CA bundle to trust through `SSL_CERT_FILE`, or None for the system's store.
    let run = |trust: Option<PathBuf>| {
        let mut cmd = check(&fleet);
        cmd.arg("--json")
            .env_remove("SSL_CERT_DIR")
            .env_remove("SSL_CERT_FILE");
        if let Some(bundle) = trust {
            cmd.env("SSL_CERT_FILE", bundle);
        }
        let out = cmd.output().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), json[0].clone())
    };
    let trusted = run(Some(ca));
    let system = run(None);
    // No CA certificate at all (a minimal container): plain http must still work, so the
    // client is built anyway and the https probe fails verification.
    let nothing = run(Some(dir.path().join("no-such-bundle.pem")));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(trusted.0, Some(0), "{}", trusted.1);
    assert_eq!(trusted.1["state"], "healthy", "{}", trusted.1);
    for (code, json) in [system, nothing] {
        assert_eq!(code, Some(1), "{json}");
        assert_eq!(json["state"], "unhealthy", "{json}");
        let error = json["probes"][0]["error"].as_str().unwrap().to_lowercase();
        assert!(error.contains("certificate"), "{error}");
    }
}
