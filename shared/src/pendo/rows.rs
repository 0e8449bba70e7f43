//! Streaming parser for Pendo's `{"startTime":…,"results":[row, row, …]}` responses.
//!
//! Bytes are fed in whatever chunks the network gives; each complete row of `results` is handed
//! out as its raw JSON bytes, so memory stays bounded by one row, not by the response. The
//! parser only tracks structure (depth, strings, escapes); the rows themselves are parsed by
//! their consumer. A body that ends before the top-level object closes is `Truncated`, never a
//! success.

use super::PendoError;

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
    pub fn feed<F>(&mut self, chunk: &[u8], mut emit: F) -> Result<(), PendoError>
    where
        F: FnMut(&[u8]) -> Result<(), PendoError>,
    {
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
                        emit(&chunk[s..end])?;
                    }
                    None => {
                        self.push_row(&chunk[..end])?;
                        emit(&self.row)?;
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
