//! The core's layers (issue 19): each top-level module of `shared/src` uses only modules of its
//! own layer or below, and the modules form no cycle. Read from the `crate::` paths of the
//! sources (test modules left out: a test may reach anywhere). `cargo test -p pendo_sync --test
//! layers -- --nocapture` prints the module graph.
//!
//! ```text
//! 0 error time clock stall schedule   what everything may use
//! 1 domain                            types and the validation of every mapping kind, Window
//! 2 pendo store queue                 the ports and their adapters
//! 3 ports                             the bundle of ports the workers and use cases take
//! 4 sync directory                    planning, transforming, the chunk and re-sync workers;
//!                                     directory rows, CSV and import plans
//! 5 app                               the use cases
//! 6 api lambda aws_env worker         the entry points
//! 7 hostile                           hostile-input property tests
//! ```

// A test reading the repository's own sources: a file it cannot read is a failure to show.
#![allow(clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("time", 0),
    ("clock", 0),
    ("deadline", 0),
    ("stall", 0),
    ("schedule", 0),
    ("domain", 1),
    ("pendo", 2),
    ("store", 2),
    ("queue", 2),
    ("ports", 3),
    ("sync", 4),
    ("directory", 4),
    ("app", 5),
    ("api", 6),
    ("lambda", 6),
    ("aws_env", 6),
    ("worker", 6),
    ("hostile", 7),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source without its `#[cfg(test)] mod … { … }` blocks. Comments stay: a comment naming
/// `crate::x` sends a reader there too, so it counts as a use.
fn without_tests(src: &str) -> String {
    let mut out = String::new();
    let mut lines = src.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            if let Some(next) = lines.peek() {
                let t = next.trim_start();
                if (t.starts_with("mod ") || t.starts_with("pub mod ")) && t.ends_with('{') {
                    let mut depth = 0i32;
                    for l in lines.by_ref() {
                        depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                        if depth <= 0 {
                            break;
                        }
                    }
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The top-level modules a source names through `crate::x` or `crate::{x, y::z}`.
fn referenced(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = src.as_bytes();
    let ident = |from: usize| -> String {
        b[from..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .map(|c| *c as char)
            .collect()
    };
    let mut at = 0;
    while let Some(i) = src[at..].find("crate::") {
        let start = at + i + "crate::".len();
        at = start;
        if start >= b.len() {
            break;
        }
        if b[start] == b'{' {
            // Names at depth 1 of the group: after `{` or `,` (whitespace skipped).
            let mut depth = 0;
            let mut expect_name = true;
            let mut j = start;
            while j < b.len() {
                match b[j] {
                    b'{' => {
                        depth += 1;
                        expect_name = depth == 1;
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => expect_name = true,
                    c if c.is_ascii_whitespace() => {}
                    _ if expect_name && depth == 1 => {
                        let name = ident(j);
                        if !name.is_empty() {
                            out.insert(name.clone());
                            j += name.len();
                            expect_name = false;
                            continue;
                        }
                        expect_name = false;
                    }
                    _ => {}
                }
                j += 1;
            }
        } else {
            let name = ident(start);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Top-level module → the other top-level modules it uses → the files that do.
fn graph(src_dir: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    rust_files(src_dir, &mut files);
    let mut g: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src_dir).expect("under src").to_path_buf();
        let first = rel
            .components()
            .next()
            .expect("a path")
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if first == "lib" {
            continue; // declares the modules and re-exports, nothing else
        }
        let src = std::fs::read_to_string(&f).expect("a readable source");
        let entry = g.entry(first.clone()).or_default();
        for m in referenced(&without_tests(&src)) {
            if m != first && layer(&m).is_some() {
                entry
                    .entry(m)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    g
}

fn cycle(g: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for next in g.get(n).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(next, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

#[test]
fn the_core_uses_only_lower_layers_and_has_no_cycle() {
    // LAYERS_SRC reads another tree (e.g. an older checkout's `shared/src`, for a before/after).
    let src = std::env::var_os("LAYERS_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let g = graph(&src);
    let mut problems = Vec::new();
    println!("the core's modules, by layer, and what each uses:");
    let mut modules: Vec<&String> = g.keys().collect();
    modules.sort_by_key(|m| (layer(m), m.to_string()));
    for m in modules {
        let Some(l) = layer(m) else {
            problems.push(format!("module {m} has no layer: add it to LAYERS"));
            continue;
        };
        let uses: Vec<String> = g[m]
            .iter()
            .map(|(to, files)| format!("{to}({})", files.len()))
            .collect();
        println!("  {l} {m:<10} -> {}", uses.join(", "));
        for (to, files) in &g[m] {
            let lt = layer(to).expect("filtered to known modules");
            if lt > l {
                problems.push(format!(
                    "{m} (layer {l}) uses {to} (layer {lt}) in {}",
                    files.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    if let Some(c) = cycle(&g) {
        problems.push(format!("cycle: {}", c.join(" -> ")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reader_finds_grouped_and_plain_paths_and_skips_test_modules() {
    let src = "use crate::domain::X;\nuse crate::{app::App, store::{Store, StoreError}, time};\n\
               fn f() { crate::stall::point(\"x\"); }\n#[cfg(test)]\nmod tests {\n    use crate::api::Y;\n    fn g() { if true { } }\n}\n";
    let got = referenced(&without_tests(src));
    let want: BTreeSet<String> = ["domain", "app", "store", "time", "stall"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(got, want);
}
