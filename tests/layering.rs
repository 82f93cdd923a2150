//! The gateway's dependencies point one way, read from `src/` itself:
//!
//! * `media/` never names `plugin`, `api`, `ingest` or `transport`;
//! * `ingest/` never names `plugin`, `api` or `transport`;
//! * `api/` never names `transport` or `ingest`;
//! * `plugin/` never names `transport`;
//! * and none of them names `runtime`, the composition root above them all.
//!
//! (`ids`, `clock`, `config`, `contain`, `secret` and the `codecs` crate are shared by
//! every layer.) `api/` and `plugin/` do no I/O of their own: no files, sockets,
//! processes or spawned tasks (they return outputs, or use a port such as the
//! streaming plugin's `StreamingIo` that the runtime supplies). And no source file passes 800 lines before its tests, but for the
//! files listed in [`STILL_TO_SPLIT`], which may only shrink: a listed file that is
//! under the limit must leave the list.

use std::path::{Path, PathBuf};

/// Lines a file may have before its `#[cfg(test)]` module.
const MAX_LINES: usize = 800;

/// Files past the limit, to be split by concept: each may not grow. (Empty since issue
/// 15 split the last eight; a file that must pass the limit for a while goes here with
/// its size and a reason.)
const STILL_TO_SPLIT: &[(&str, usize)] = &[];

/// For each layer, the top-level modules it must not name.
const RULES: &[(&str, &[&str])] = &[
    (
        "media",
        &["plugin", "api", "ingest", "transport", "runtime"],
    ),
    ("ingest", &["plugin", "api", "transport", "runtime"]),
    ("api", &["transport", "ingest", "runtime"]),
    ("plugin", &["transport", "runtime"]),
];

/// Layers that decide and do no I/O, and what they must not name (before their tests).
const NO_IO: &[&str] = &["api", "plugin"];
const IO_NAMES: &[&str] = &[
    "std::fs",
    "tokio::fs",
    "tokio::net",
    "UdpSocket::bind",
    "TcpListener",
    "TcpStream",
    "std::process",
    "tokio::spawn",
    "std::thread::spawn",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line of code names through `crate::…` (also inside a
/// `crate::{a, b::c}` group). Comments do not count: they make no dependency.
fn named_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        // `cardea_codecs::` and the like end in "crate::" too only if spelled so; require
        // a boundary before it.
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() {
                    names.push(first.to_owned());
                }
            }
        } else {
            let first: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.push(first);
        }
    }
    names
}

/// Lines before the first `#[cfg(test)]` (a file's tests may sit at its end).
fn lines_before_tests(text: &str) -> usize {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .count()
}

#[test]
fn named_modules_reads_paths_and_groups() {
    assert_eq!(named_modules("use crate::ids::SourceId;"), ["ids"]);
    assert_eq!(
        named_modules("use crate::{api::Jsep, plugin, media::x};"),
        ["api", "plugin", "media"]
    );
    assert_eq!(
        named_modules("let x = crate::ingest::rtp::run(); // crate::api"),
        ["ingest"]
    );
    assert!(named_modules("/// see [`crate::api`]").is_empty());
    assert!(named_modules("use cardea_codecs::rtp::RtpHeader;").is_empty());
}

/// Every line of `src/<layer>/` (only those before a file's tests when `code_only`)
/// that `check` objects to, as `path:line: <layer> <objection>: <line>`.
fn scan(layer: &str, code_only: bool, check: impl Fn(&str) -> Vec<String>) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src").join(layer), &mut files);
    assert!(!files.is_empty(), "no files in src/{layer}");
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let end = if code_only {
            lines_before_tests(&text)
        } else {
            usize::MAX
        };
        for (n, line) in text.lines().take(end).enumerate() {
            for objection in check(line) {
                found.push(format!(
                    "{}:{}: {layer} {objection}: {}",
                    file.strip_prefix(root()).unwrap().display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    found
}

#[test]
fn dependencies_point_one_way() {
    let mut broken = Vec::new();
    for (layer, forbidden) in RULES {
        broken.extend(scan(layer, false, |line| {
            (named_modules(line).into_iter())
                .filter(|name| forbidden.contains(&name.as_str()))
                .map(|name| format!("names {name}"))
                .collect()
        }));
    }
    assert!(broken.is_empty(), "\n{}", broken.join("\n"));
}

/// The I/O a line of code names (comments do not count).
fn named_io(line: &str) -> Option<&'static str> {
    let code = line.split("//").next().unwrap_or("");
    IO_NAMES.iter().copied().find(|n| code.contains(n))
}

#[test]
fn named_io_reads_code_not_comments() {
    assert_eq!(
        named_io("let s = UdpSocket::bind(a)?;"),
        Some("UdpSocket::bind")
    );
    assert_eq!(named_io("    std::fs::write(p, t)"), Some("std::fs"));
    assert_eq!(named_io("// written with std::fs by the runtime"), None);
    assert_eq!(named_io("fn bind_udp(&mut self, addr: SocketAddr)"), None);
}

#[test]
fn decisions_do_no_io() {
    let mut broken = Vec::new();
    for layer in NO_IO {
        broken.extend(scan(layer, true, |line| {
            named_io(line)
                .map(|io| format!("does I/O ({io})"))
                .into_iter()
                .collect()
        }));
    }
    assert!(broken.is_empty(), "\n{}", broken.join("\n"));
}

#[test]
fn source_files_stay_under_800_lines_before_their_tests() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("codecs/src"), &mut files);
    let mut problems = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let n = lines_before_tests(&std::fs::read_to_string(&file).unwrap());
        match STILL_TO_SPLIT.iter().find(|(f, _)| *f == rel) {
            Some((_, _)) if n <= MAX_LINES => {
                problems.push(format!("{rel}: {n} lines now: take it off STILL_TO_SPLIT"))
            }
            Some((_, was)) if n > *was => problems.push(format!(
                "{rel}: {n} lines, was {was}: split it, don't grow it"
            )),
            None if n > MAX_LINES => problems.push(format!(
                "{rel}: {n} lines before its tests (max {MAX_LINES})"
            )),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
