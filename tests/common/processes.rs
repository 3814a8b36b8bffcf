//! Processes the end-to-end tests start: a private Mosquitto, and the
//! `stillwater` binary serving a configuration. Each is killed when dropped,
//! so a failing test leaves nothing behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::wait_until;

/// A private Mosquitto on a free port, killed when dropped.
pub struct PrivateMosquitto {
    child: Child,
    pub port: u16,
    config: std::path::PathBuf,
    settings: String,
}

impl PrivateMosquitto {
    pub fn start(dir: &std::path::Path, port: u16) -> Self {
        Self::start_with(dir, port, "persistence false\n")
    }

    /// Started with `settings` (mosquitto.conf lines) after its listener.
    pub fn start_with(dir: &std::path::Path, port: u16, settings: &str) -> Self {
        let config = dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\n{settings}"),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("STILLWATER_TEST_MOSQUITTO is set, so the mosquitto binary must be installed");
        Self {
            child,
            port,
            config,
            settings: settings.to_string(),
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        let dir = self.config.parent().unwrap().to_path_buf();
        let settings = self.settings.clone();
        *self = Self::start_with(&dir, self.port, &settings);
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn wait_listening(&self) {
        let port = self.port;
        wait_until("the private mosquitto listens", || async move {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
    }
}

impl Drop for PrivateMosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `stillwater serve` process on a configuration file.
pub struct GatewayProcess {
    child: Child,
    pub config: PathBuf,
}

impl GatewayProcess {
    pub fn spawn(config: &Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_stillwater"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the stillwater binary starts");
        Self {
            child,
            config: config.to_path_buf(),
        }
    }

    /// SIGKILL, and reaped.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// How it ended, when it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .try_wait()
            .expect("the process can be waited for")
    }

    /// Started again on the same configuration, as a supervisor would.
    pub fn restart(&mut self) {
        *self = Self::spawn(&self.config.clone());
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
