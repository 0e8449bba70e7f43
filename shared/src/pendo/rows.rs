//! Streaming parser for Pendo's `{"startTime":…,"results":[row, row, …]}` responses.
//!
//! Bytes are fed in whatever chunks the network gives; each complete row of `results` is handed
//! out as its raw JSON bytes, so memory stays bounded by one row, not by the response. The
//! parser only tracks structure (depth, strings, escapes); the rows themselves are parsed by
//! their consumer. A body that ends before the top-level object closes is `Truncated`, never a
//! success.

use super::{PendoError, RowError, RowSink};

/// Largest single row accepted (a row is a few hundred bytes; this only bounds memory).
pub const MAX_ROW_BYTES: usize = 8 * 1024 * 1024;

/// Deepest nesting accepted.
const MAX_DEPTH: u32 = 256;

/// Bytes that change the structure inside a row (outside its strings).
const STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t
};

/// Where the scanner's rows go: a closure ([`RowScanner::feed`]) or a sink.
trait Consumer {
    fn prefix(&mut self, rest: &[u8]) -> Option<Result<usize, PendoError>>;
    fn row(&mut self, raw: &[u8]) -> Result<(), PendoError>;
}

struct Emit<F>(F);

impl<F: FnMut(&[u8]) -> Result<(), PendoError>> Consumer for Emit<F> {
    #[inline]
    fn prefix(&mut self, _: &[u8]) -> Option<Result<usize, PendoError>> {
        None
    }
    #[inline]
    fn row(&mut self, raw: &[u8]) -> Result<(), PendoError> {
        (self.0)(raw)
    }
}

struct Sink<'s, S: ?Sized>(&'s mut S);

impl<S: RowSink + ?Sized> Consumer for Sink<'_, S> {
    #[inline]
    fn prefix(&mut self, rest: &[u8]) -> Option<Result<usize, PendoError>> {
        self.0.row_prefix(rest).map(|r| r.map_err(PendoError::Sink))
    }
    #[inline]
    fn row(&mut self, raw: &[u8]) -> Result<(), PendoError> {
        self.0.row(raw).map_err(PendoError::Sink)
    }
}

fn check_row_len(len: usize) -> Result<(), PendoError> {
    if len > MAX_ROW_BYTES {
        return Err(PendoError::Malformed(format!(
            "a row is larger than {MAX_ROW_BYTES} bytes"
        )));
    }
    Ok(())
}

#[derive(Debug, Default)]
pub struct RowScanner {
    depth: u32,
    started: bool,
    finished: bool,
    in_string: bool,
    escape: bool,
    /// Capturing a string at depth 1 (a top-level key candidate).
    capturing_key: bool,
    key: Vec<u8>,
    /// The key whose value comes next at depth 1.
    pending_key_is_results: bool,
    in_results: bool,
    seen_results: bool,
    collecting: bool,
    row: Vec<u8>,
    rows: u64,
}

impl RowScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows emitted so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Feeds a chunk of the body; calls `emit` with each complete row. A row that lies wholly
    /// inside `chunk` is handed out as a slice of it; only a row split across chunks is copied.
    pub fn feed<F>(&mut self, chunk: &[u8], emit: F) -> Result<(), PendoError>
    where
        F: FnMut(&[u8]) -> Result<(), PendoError>,
    {
        self.scan(chunk, &mut Emit(emit))
    }

    /// [`RowScanner::feed`] into a sink. Each row is first offered to
    /// [`RowSink::row_prefix`] with the rest of the chunk, so a sink that reads flat rows
    /// itself finds their ends in the same pass; the others get [`RowSink::row`].
    pub fn feed_sink<S: RowSink + ?Sized>(
        &mut self,
        chunk: &[u8],
        sink: &mut S,
    ) -> Result<(), PendoError> {
        self.scan(chunk, &mut Sink(sink))
    }

    fn scan<C: Consumer>(&mut self, chunk: &[u8], consumer: &mut C) -> Result<(), PendoError> {
        let mut i = 0;
        // Where the row being collected starts in `chunk`, when it started in this chunk (then
        // `self.row` is empty); `None` when it started in an earlier one (its head is in
        // `self.row`).
        let mut row_start: Option<usize> = None;
        while i < chunk.len() {
            if !self.collecting {
                let b = chunk[i];
                i += 1;
                self.step(b)?;
                if self.collecting {
                    // A row starts at `chunk[i - 1]` (its `{`; depth is now 3).
                    if let Some(taken) = consumer.prefix(&chunk[i - 1..]) {
                        let len = taken?;
                        if len < 2 || len > chunk.len() - (i - 1) {
                            return Err(PendoError::Sink(RowError(format!(
                                "a row reader took {len} bytes of {}",
                                chunk.len() - (i - 1)
                            ))));
                        }
                        check_row_len(len)?;
                        // As if scanned: the row's `}` brings the depth back to 2.
                        self.collecting = false;
                        self.depth = 2;
                        self.rows += 1;
                        i = i - 1 + len;
                        continue;
                    }
                    row_start = Some(i - 1);
                    self.row.clear();
                }
                continue;
            }
            // Inside a row: only quotes, escapes and brackets matter.
            if self.in_string {
                if self.escape {
                    self.escape = false;
                    i += 1;
                    continue;
                }
                // Strings are short: a plain loop beats a vectorised search here.
                match chunk[i..].iter().position(|&b| b == b'"' || b == b'\\') {
                    None => i = chunk.len(),
                    Some(p) => {
                        let at = i + p;
                        if chunk[at] == b'"' {
                            self.in_string = false;
                        } else {
                            self.escape = true;
                        }
                        i = at + 1;
                    }
                }
                continue;
            }
            let mut end = None;
            while i < chunk.len() {
                let b = chunk[i];
                i += 1;
                if !STRUCTURAL[b as usize] {
                    continue;
                }
                match b {
                    b'"' => {
                        self.in_string = true;
                        break;
                    }
                    b'{' | b'[' => {
                        self.depth += 1;
                        if self.depth > MAX_DEPTH {
                            return Err(PendoError::Malformed("JSON nested too deeply".into()));
                        }
                    }
                    _ => {
                        self.depth -= 1;
                        if self.depth == 2 {
                            end = Some(i);
                            break;
                        }
                    }
                }
            }
            if let Some(end) = end {
                self.collecting = false;
                self.rows += 1;
                match row_start.take() {
                    Some(s) => {
                        check_row_len(end - s)?;
                        consumer.row(&chunk[s..end])?;
                    }
                    None => {
                        self.push_row(&chunk[..end])?;
                        consumer.row(&self.row)?;
                    }
                }
            }
        }
        if self.collecting {
            // The row goes on in the next chunk: keep what this chunk has of it.
            let from = row_start.unwrap_or(0);
            self.push_row(&chunk[from..])?;
        }
        Ok(())
    }

    fn push_row(&mut self, bytes: &[u8]) -> Result<(), PendoError> {
        check_row_len(self.row.len() + bytes.len())?;
        self.row.extend_from_slice(bytes);
        Ok(())
    }

    /// One byte outside any row (the document's own structure).
    fn step(&mut self, b: u8) -> Result<(), PendoError> {
        if self.in_string {
            if self.escape {
                self.escape = false;
            } else if b == b'\\' {
                self.escape = true;
            } else if b == b'"' {
                self.in_string = false;
                if self.capturing_key {
                    self.capturing_key = false;
                }
                return Ok(());
            }
            if self.capturing_key && self.key.len() < 64 {
                self.key.push(b);
            }
            return Ok(());
        }
        if self.finished {
            if b.is_ascii_whitespace() {
                return Ok(());
            }
            return Err(PendoError::Malformed(
                "data after the end of the JSON document".into(),
            ));
        }
        match b {
            b' ' | b'\n' | b'\r' | b'\t' => {}
            b'"' => {
                self.in_string = true;
                if self.depth == 1 {
                    self.capturing_key = true;
                    self.key.clear();
                }
            }
            b':' if self.depth == 1 => {
                self.pending_key_is_results = self.key == b"results";
            }
            b'{' | b'[' => {
                if !self.started {
                    if b != b'{' {
                        return Err(PendoError::Malformed(
                            "the response is not a JSON object".into(),
                        ));
                    }
                    self.started = true;
                } else if self.in_results && self.depth == 2 {
                    if b != b'{' {
                        return Err(PendoError::Malformed(
                            "a results element is not an object".into(),
                        ));
                    }
                    self.collecting = true;
                } else if self.depth == 1 && b == b'[' && self.pending_key_is_results {
                    if self.seen_results {
                        return Err(PendoError::Malformed("two results arrays".into()));
                    }
                    self.in_results = true;
                    self.seen_results = true;
                }
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(PendoError::Malformed("JSON nested too deeply".into()));
                }
            }
            b'}' | b']' => {
                if self.depth == 0 {
                    return Err(PendoError::Malformed("unbalanced brackets".into()));
                }
                self.depth -= 1;
                if self.in_results && self.depth == 1 {
                    self.in_results = false;
                } else if self.depth == 0 {
                    self.finished = true;
                }
            }
            _ => {
                if !self.started {
                    return Err(PendoError::Malformed(
                        "the response is not a JSON object".into(),
                    ));
                }
                if self.in_results && self.depth == 2 && b != b',' {
                    return Err(PendoError::Malformed(
                        "a results element is not an object".into(),
                    ));
                }
                if self.depth == 1 && b != b',' {
                    self.pending_key_is_results = false;
                }
            }
        }
        Ok(())
    }

    /// Call at the end of the body: a document that did not close is `Truncated`.
    pub fn finish(&self) -> Result<u64, PendoError> {
        if !self.finished {
            return Err(PendoError::Truncated);
        }
        if !self.seen_results {
            return Err(PendoError::Malformed(
                "the response has no results array".into(),
            ));
        }
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan_in_pieces(body: &[u8], piece: usize) -> Result<Vec<String>, PendoError> {
        let mut s = RowScanner::new();
        let mut out = Vec::new();
        for c in body.chunks(piece.max(1)) {
            s.feed(c, |r| {
                out.push(String::from_utf8_lossy(r).into_owned());
                Ok(())
            })?;
        }
        s.finish()?;
        Ok(out)
    }

    const BODY: &str = r#"{"startTime":1,"results":[{"a":"x}\"]","b":[1,{"c":2}]}, {"a":"y"}],"z":{"results":[{"no":1}]}}"#;

    /// A sink that takes flat event rows in the scanner's pass (`row_prefix`) and the others
    /// row by row; records every row in order, and how many came each way.
    #[derive(Default)]
    struct Both {
        rows: Vec<String>,
        by_prefix: usize,
    }

    impl RowSink for Both {
        fn row(&mut self, raw: &[u8]) -> Result<(), RowError> {
            self.rows.push(String::from_utf8_lossy(raw).into_owned());
            Ok(())
        }
        fn row_prefix(&mut self, rest: &[u8]) -> Option<Result<usize, RowError>> {
            let (_, len) = crate::pendo::event_row::EventRow::parse_prefix(rest)?;
            self.rows
                .push(String::from_utf8_lossy(&rest[..len]).into_owned());
            self.by_prefix += 1;
            Some(Ok(len))
        }
        fn reset(&mut self) {}
    }

    #[test]
    fn a_sink_reading_rows_itself_gets_the_same_rows() {
        let body = concat!(
            r#"{"startTime":1,"results":[{"day":1,"company":"a"},"#,
            r#"{"a":"x}\"]","b":[1,{"c":2}]}, {"day":2,"name":"Zoë"} ,{},"#,
            r#"{"day":3,"company":"a\"b"}],"z":{"results":[{"no":1}]}}"#
        );
        let want = scan_in_pieces(body.as_bytes(), 1000).unwrap();
        assert_eq!(want.len(), 5);
        for piece in [1, 2, 7, 30, 1000] {
            let mut s = RowScanner::new();
            let mut sink = Both::default();
            for c in body.as_bytes().chunks(piece) {
                s.feed_sink(c, &mut sink).unwrap();
            }
            assert_eq!(s.finish().unwrap(), 5, "piece {piece}");
            assert_eq!(sink.rows, want, "piece {piece}");
            if piece == 1000 {
                // The flat rows without escapes (3 of 5) came through `row_prefix`.
                assert_eq!(sink.by_prefix, 3);
            }
        }
    }

    #[test]
    fn a_row_reader_taking_more_than_the_chunk_is_an_error() {
        struct Greedy;
        impl RowSink for Greedy {
            fn row(&mut self, _: &[u8]) -> Result<(), RowError> {
                Ok(())
            }
            fn row_prefix(&mut self, rest: &[u8]) -> Option<Result<usize, RowError>> {
                Some(Ok(rest.len() + 1))
            }
            fn reset(&mut self) {}
        }
        let e = RowScanner::new()
            .feed_sink(br#"{"results":[{"a":1}]}"#, &mut Greedy)
            .unwrap_err();
        assert!(
            e.to_string().contains("a row reader took 10 bytes of 9"),
            "{e}"
        );
    }

    #[test]
    fn rows_are_split_whatever_the_chunking() {
        for piece in [1, 2, 3, 7, 1000] {
            let rows = scan_in_pieces(BODY.as_bytes(), piece).unwrap();
            assert_eq!(
                rows,
                vec![r#"{"a":"x}\"]","b":[1,{"c":2}]}"#, r#"{"a":"y"}"#],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn empty_results_and_key_order() {
        assert_eq!(scan_in_pieces(br#"{"results":[]}"#, 3).unwrap().len(), 0);
        assert_eq!(
            scan_in_pieces(br#"{"results":[{}],"startTime":5}"#, 2).unwrap(),
            vec!["{}"]
        );
        // A string value equal to "results" is not the key.
        let r = scan_in_pieces(
            br#"{"name":"results","x":[{"a":1}],"results":[{"b":2}]}"#,
            4,
        )
        .unwrap();
        assert_eq!(r, vec![r#"{"b":2}"#]);
    }

    #[test]
    fn truncation_is_never_success() {
        for cut in 1..BODY.len() {
            let r = scan_in_pieces(&BODY.as_bytes()[..cut], 5);
            assert!(r.is_err(), "cut at {cut} was taken as complete");
        }
    }

    #[test]
    fn malformed_documents() {
        assert!(matches!(
            scan_in_pieces(b"[1,2]", 4),
            Err(PendoError::Malformed(_))
        ));
        assert!(matches!(
            scan_in_pieces(br#"{"startTime":1}"#, 4),
            Err(PendoError::Malformed(_))
        ));
        assert!(matches!(
            scan_in_pieces(br#"{"results":[1]}"#, 4),
            Err(PendoError::Malformed(_))
        ));
        assert!(matches!(
            scan_in_pieces(br#"{"results":[]} x"#, 4),
            Err(PendoError::Malformed(_))
        ));
        assert!(matches!(scan_in_pieces(b"", 4), Err(PendoError::Truncated)));
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..300), piece in 1usize..20) {
            let _ = scan_in_pieces(&body, piece);
        }

        #[test]
        fn round_trips_generated_rows(vals in proptest::collection::vec(("[a-z\"\\\\{}\\[\\] ]{0,8}", any::<i32>()), 0..20), piece in 1usize..30) {
            let rows: Vec<serde_json::Value> = vals.iter().map(|(s, n)| serde_json::json!({"s": s, "n": n, "l": [n, {"s": s}]})).collect();
            let body = serde_json::json!({"startTime": 0, "results": rows}).to_string();
            let got = scan_in_pieces(body.as_bytes(), piece).unwrap();
            let parsed: Vec<serde_json::Value> = got.iter().map(|r| serde_json::from_str(r).unwrap()).collect();
            prop_assert_eq!(parsed, rows);
        }
    }
}
