//! Stall points, for the crash tests (of the local runner and of the Lambda binaries): with
//! `PENDO_SYNC_STALL_AT=POINT` (or `POINT@N`, the N-th time the process reaches it; the first
//! by default), the process prints `stalled at POINT` to stderr there and waits forever, so
//! that a test can SIGKILL it at that exact step. Only debug builds (the ones tests run) read the variable; in a release build a
//! point is nothing.
//!
//! The points: `resync-fan-out` (a Re-sync all planned and recorded, its chunks not yet sent),
//! `chunk-fetched` (a chunk's rows read from Pendo, nothing written), `chunk-written` (a
//! chunk's writes and follow-up done, its message not yet deleted), `release-claimed` (the
//! release of a run's deferred chunks claimed, nothing sent), `import-page-read` (a page of a
//! directory import read from Pendo, nothing written), `chunk-replaced` (a chunk's values,
//! users and unmatched rows written, its outcome not recorded); on DynamoDB also
//! `replace-items-written` (a chunk's items put and its leftovers deleted, its manifests not
//! yet rewritten) and `purge-items-deleted` (the items one manifest lists deleted, the
//! manifest not).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The variable that names the point.
pub const VAR: &str = "PENDO_SYNC_STALL_AT";

/// The step `point` of the work: stalls there when the variable names it (debug builds only).
pub async fn point(point: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    let Some((name, nth)) = wanted() else {
        return;
    };
    if name != point {
        return;
    }
    static REACHED: AtomicU64 = AtomicU64::new(0);
    if REACHED.fetch_add(1, Ordering::SeqCst) + 1 != *nth {
        return;
    }
    // One write of the whole line: stderr is unbuffered, and `eprintln!` may write the pieces
    // of its format one by one; a test reading the log between them would see half a line.
    let line = format!("stalled at {point} ({VAR})\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    std::future::pending::<()>().await;
}

fn wanted() -> Option<&'static (String, u64)> {
    static WANTED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    WANTED
        .get_or_init(|| std::env::var(VAR).ok().as_deref().and_then(parse))
        .as_ref()
}

fn parse(spec: &str) -> Option<(String, u64)> {
    let spec = spec.trim();
    let (name, nth) = match spec.split_once('@') {
        Some((name, n)) => (name, n.parse().ok().filter(|n| *n > 0)?),
        None => (spec, 1),
    };
    (!name.is_empty()).then(|| (name.to_string(), nth))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_point_is_named_with_an_optional_count() {
        assert_eq!(parse("chunk-written"), Some(("chunk-written".into(), 1)));
        assert_eq!(
            parse(" chunk-fetched@3 "),
            Some(("chunk-fetched".into(), 3))
        );
        assert_eq!(parse("chunk-fetched@0"), None);
        assert_eq!(parse("chunk-fetched@x"), None);
        assert_eq!(parse("@2"), None);
        assert_eq!(parse(""), None);
    }
}
