//! Network namespaces made by a test, for topologies loopback cannot show: a browser
//! that reaches the gateway only through a TURN server, or only through a NAT. The
//! test's own namespace (where the in-process gateway runs) is the "gateway" side;
//! each [`Netns`] is deleted, with its veth pairs, when dropped (also on a panic), so
//! the next test binary finds loopback alone again.

use std::process::Command;

use anyhow::{bail, Context};

/// Runs `ip` with `args`; an error says which command failed and why.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    crate::checked_output(
        Command::new("ip").args(args),
        &format!("ip {}", args.join(" ")),
        "running ip",
    )
    .map(drop)
}

/// A named network namespace, with loopback up.
pub struct Netns {
    /// Its name (`ip netns exec <name> …`).
    pub name: String,
}

impl Netns {
    /// Creates `<prefix><pid>` (unique per test process).
    pub fn new(prefix: &str) -> anyhow::Result<Netns> {
        let name = format!("{prefix}{}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip` inside this namespace.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command run inside this namespace.
    pub fn command(&self, program: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c.kill_on_drop(true);
        c
    }

    /// Loads an nftables ruleset (`nft -f -`) inside this namespace.
    pub async fn nft(&self, rules: &str) -> anyhow::Result<()> {
        load_nft(self.command("nft"), rules).await
    }

    /// Chromium in this namespace on the page at `url` for `seconds`, in browser.mjs's
    /// `mode` ("echo", "viewer", "whep"...): what it printed.
    pub async fn chromium(&self, url: &str, mode: &str, seconds: u32) -> serde_json::Value {
        let mut cmd = self.command("node");
        cmd.arg(crate::workspace().join("interop-tests/js/browser.mjs"))
            .arg(url)
            .arg(seconds.to_string())
            .arg(mode);
        crate::run_json(cmd, std::time::Duration::from_secs(seconds as u64 + 60))
            .await
            .unwrap()
    }

    /// Writes a sysctl inside this namespace (e.g. `net.ipv4.ip_forward`).
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.name, "sysctl", "-q", "-w"])
            .arg(format!("{key}={value}"))
            .status()?;
        if !status.success() {
            bail!("sysctl {key}={value} in {}", self.name);
        }
        Ok(())
    }
}

/// Loads an nftables ruleset in the test's own namespace (see [`Netns::nft`]).
pub async fn nft(rules: &str) -> anyhow::Result<()> {
    load_nft(tokio::process::Command::new("nft"), rules).await
}

/// Runs `nft` (a command in some namespace) with `rules` on its standard input.
async fn load_nft(mut nft: tokio::process::Command, rules: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    nft.args(["-f", "-"]).stdin(std::process::Stdio::piped());
    let mut child = nft.spawn().context("nft (Debian nftables)")?;
    let mut stdin = child.stdin.take().context("nft stdin")?;
    stdin.write_all(rules.as_bytes()).await?;
    drop(stdin);
    if !child.wait().await?.success() {
        bail!("nft refused:\n{rules}");
    }
    Ok(())
}

/// Waits (up to 5 s) until loopback is the test namespace's only network again (a
/// namespace goes when its last process has), then asserts it, as every later test
/// expects.
pub async fn until_loopback_alone() {
    for _ in 0..50 {
        if if_addrs::get_if_addrs()
            .expect("listing interfaces")
            .iter()
            .all(|i| i.is_loopback())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    crate::require_loopback_only();
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A veth pair: `a_name` with `a_addr` (CIDR) in namespace `a` (None: the test's own),
/// `b_name` with `b_addr` in `b`; both up.
pub fn veth(
    a: Option<&Netns>,
    a_name: &str,
    a_addr: &str,
    b: &Netns,
    b_name: &str,
    b_addr: &str,
) -> anyhow::Result<()> {
    ip(&[
        "link", "add", a_name, "type", "veth", "peer", "name", b_name, "netns", &b.name,
    ])?;
    if let Some(ns) = a {
        ip(&["link", "set", a_name, "netns", &ns.name])?;
    }
    let in_a = |args: &[&str]| match a {
        Some(ns) => ns.ip(args),
        None => ip(args),
    };
    in_a(&["addr", "add", a_addr, "dev", a_name])?;
    in_a(&["link", "set", a_name, "up"])?;
    b.ip(&["addr", "add", b_addr, "dev", b_name])?;
    b.ip(&["link", "set", b_name, "up"])?;
    Ok(())
}
