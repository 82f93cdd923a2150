//! The Docker engine for the lab test: the private engine `scripts/docker.sh` builds the
//! images with (its own socket, data root and exec root; never a Docker the machine
//! runs for something else), started here in the test's own network namespace when it
//! is not running, and stopped again when this test started it. Commands go through
//! Debian's client (`/usr/bin/docker`, the engine's version) and `docker-compose`.

#![allow(clippy::disallowed_methods)] // drives a real engine in real time

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The engine's bridge for builds and the default network (not docker0, which a Docker
/// the machine runs may own), as `scripts/docker.sh` names it.
const BRIDGE: &str = "cardea0";

/// The engine's data root and run directory, as `scripts/docker.sh` has them.
fn dirs() -> (PathBuf, PathBuf) {
    let root = std::env::var_os("CARDEA_DOCKER_ROOT")
        .map_or_else(|| PathBuf::from("/var/lib/cardea-docker"), PathBuf::from);
    let run = std::env::var_os("CARDEA_DOCKER_RUN")
        .map_or_else(|| PathBuf::from("/run/cardea-docker"), PathBuf::from);
    (root, run)
}

/// The engine's socket as a `DOCKER_HOST` value.
fn host() -> String {
    format!("unix://{}/docker.sock", dirs().1.display())
}

/// A command for the engine: `DOCKER_HOST` set, Debian's client first on the PATH.
pub fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("DOCKER_HOST", host())
        .env("PATH", format!("/usr/bin:/usr/sbin:{path}"))
        .env("DOCKER_BUILDKIT", "1")
        .env("COMPOSE_DOCKER_CLI_BUILD", "1");
    cmd
}

/// Runs `docker <args>`; its output, or an error with its stderr.
pub fn docker(args: &[&str]) -> anyhow::Result<Output> {
    crate::checked_output(
        command("/usr/bin/docker").args(args).stdin(Stdio::null()),
        &format!("docker {}", args.join(" ")),
        "running docker (apt install docker.io)",
    )
}

/// `docker <args>`'s standard output, trimmed.
pub fn docker_text(args: &[&str]) -> anyhow::Result<String> {
    Ok(String::from_utf8_lossy(&docker(args)?.stdout)
        .trim()
        .to_owned())
}

/// The engine, running; stopped when dropped if this process started it.
pub struct Engine {
    started: Option<Child>,
}

impl Engine {
    /// Uses the private engine if it answers, else starts it (in this process's network
    /// namespace) and waits up to 60 s for it.
    pub fn up() -> anyhow::Result<Engine> {
        let (root, run) = dirs();
        if docker(&["info"]).is_ok() {
            // Published ports are reached through this namespace's loopback: an engine
            // in another namespace (scripts/docker.sh up on the host) would not do.
            let pid = std::fs::read_to_string(run.join("dockerd.pid")).unwrap_or_default();
            let theirs = std::fs::read_link(format!("/proc/{}/ns/net", pid.trim()));
            if theirs.ok() != std::fs::read_link("/proc/self/ns/net").ok() {
                bail!("the lab's Docker engine runs in another network namespace: stop it (scripts/docker.sh down)");
            }
            return Ok(Engine { started: None });
        }
        std::fs::create_dir_all(&run)?;
        // Its own bridge, as scripts/docker.sh makes it (removed again when dropped).
        if crate::netns::ip(&["link", "show", BRIDGE]).is_err() {
            for args in [
                &["link", "add", BRIDGE, "type", "bridge"][..],
                &["addr", "add", "10.213.89.1/24", "dev", BRIDGE],
                &["link", "set", BRIDGE, "up"],
            ] {
                crate::netns::ip(args)?;
            }
        }
        let log = std::fs::File::create(run.join("dockerd-test.log"))?;
        let child = Command::new("dockerd")
            .args(["--host", &host()])
            .arg("--data-root")
            .arg(&root)
            .arg("--exec-root")
            .arg(run.join("exec"))
            .arg("--pidfile")
            .arg(run.join("dockerd.pid"))
            .args(["--bridge", BRIDGE])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd (apt install docker.io)")?;
        let engine = Engine {
            started: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if docker(&["info"]).is_ok() {
                return Ok(engine);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        bail!(
            "dockerd did not answer in 60 s; its log: {}",
            run.join("dockerd-test.log").display()
        )
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let Some(child) = &mut self.started else {
            return;
        };
        // SIGTERM: the engine stops its containerd and shims and removes its socket.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The tests after this one expect loopback alone in the namespace.
        let _ = crate::netns::ip(&["link", "delete", BRIDGE]);
    }
}

/// A docker-compose project of the workspace's `docker-compose.yml`, taken down
/// (containers, networks, anonymous volumes) when dropped.
pub struct Compose {
    project: String,
}

impl Compose {
    /// The project named `project`.
    pub fn new(project: &str) -> Compose {
        Compose {
            project: project.to_owned(),
        }
    }

    /// `docker-compose -p <project> <args>` in the workspace, with `envs`; its output, or
    /// an error with its stderr.
    pub fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Output> {
        let mut cmd = command("docker-compose");
        cmd.current_dir(crate::workspace())
            .args(["-p", &self.project])
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        crate::checked_output(
            &mut cmd,
            &format!("docker-compose {}", args.join(" ")),
            "running docker-compose (apt install docker-compose)",
        )
    }

    /// The container of `service` (compose 1's naming: `<project>_<service>_1`).
    pub fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.project)
    }

    /// `docker-compose down`.
    pub fn down(&self) -> anyhow::Result<()> {
        self.run(&["down", "--volumes", "--remove-orphans", "-t", "10"], &[])
            .map(drop)
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if let Err(e) = self.down() {
            eprintln!("{e:#}");
        }
    }
}
