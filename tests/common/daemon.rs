//! The built binary as a test drives it: run it, write its config, start it as a daemon and
//! wait until it is ready, send it signals.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::{http_get, wait_until};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_s3canary");

/// Runs the binary with `args` (no config from the environment) and waits for it.
pub fn s3canary(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("S3CANARY_CONFIG")
        .output()
        .expect("binary runs")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `sig` ("TERM", "HUP", ...) to the daemon.
pub fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("the daemon is running").to_string();
    let sent = Command::new("kill")
        .args([&format!("-{sig}"), &pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{sig} {pid} failed");
}

/// Writes a config for targets (name, bucket) at `endpoint` into a fresh folder.
pub fn write_config(
    endpoint: &str,
    listen: &str,
    extra_defaults: &str,
    targets: &[(&str, &str)],
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("[server]\nlisten = \"{listen}\"\n\n[defaults]\n{extra_defaults}\n");
    for (name, bucket) in targets {
        text.push_str(&format!(
            "\n[[target]]\nname = \"{name}\"\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\npath_style = true\n",
        ));
    }
    let path = dir.path().join("s3canary.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// A config like [`write_config`]'s whose daemon listens on a free loopback port; returns
/// that address, the folder and the file.
pub fn daemon_config(
    endpoint: &str,
    extra_defaults: &str,
    targets: &[(&str, &str)],
) -> (String, tempfile::TempDir, PathBuf) {
    let addr = format!("127.0.0.1:{}", free_port());
    let (dir, cfg) = write_config(endpoint, &addr, extra_defaults, targets);
    (addr, dir, cfg)
}

/// Points `cmd` at the embedded server's credentials and away from any other source.
pub fn with_embedded_creds(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", s3canary::embedded::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", s3canary::embedded::SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("S3CANARY_CONFIG")
}

/// Starts `s3canary run` on `cfg`; returns the child and its HTTP address once ready.
pub async fn start_daemon(cfg: &Path, addr: &str, log: Stdio) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["run", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    with_embedded_creds(cmd.as_std_mut());
    let child = cmd.spawn().unwrap();
    let ready = wait_until(Duration::from_secs(20), || async {
        matches!(http_get(addr, "/-/ready").await, Ok((200, _)))
    })
    .await;
    assert!(ready, "daemon never ready");
    child
}
