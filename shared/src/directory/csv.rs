//! Directory uploads as CSV (`PUT /v1/directory/{kind}` with `Content-Type: text/csv`): a header
//! row naming the fields of a JSON row (companies, assets, projects: `externalId`, `name`,
//! `companyId`; end users: `companyId`, `externalId`, `email`, `name`, `surname`), then a row per
//! object; an empty cell is an absent field.
//!
//! The body is streamed to a temporary file while its shape is checked: cells in UTF-8, every
//! row as many cells as the header, at most [`MAX_ROWS`] rows and [`MAX_BYTES`] bytes. An upload
//! refused there changes nothing. The file is then read back [`MAX_BATCH`] rows at a time, each
//! batch upserted exactly as a JSON batch, with the same per-row errors; `index` counts the data
//! rows of the whole upload from 0 (row 0 is the line after the header). Memory holds one batch,
//! never the upload.

use super::MAX_BATCH;
use crate::domain::Target;
use csv_core::{ReadRecordResult, Reader};
use serde_json::{Map, Value};
use std::io::{Read, Seek, Write};

/// Largest number of data rows in one upload.
pub const MAX_ROWS: usize = 100_000;
/// Largest upload, in bytes.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Why an upload was refused before anything was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("{0}")]
    Header(String),
    /// `row` counts data rows from 0, as per-row errors do.
    #[error("row {row}: {message}")]
    Row { row: usize, message: String },
    #[error("at most {MAX_ROWS} rows per upload; split the file")]
    TooManyRows,
    #[error("at most {} MiB per upload; split the file", MAX_BYTES / (1024 * 1024))]
    TooLarge,
    #[error("the upload has no header row")]
    Empty,
    #[error("could not keep the upload: {0}")]
    Io(String),
}

fn io(e: std::io::Error) -> CsvError {
    CsvError::Io(e.to_string())
}

/// The columns a directory kind takes, the required first.
pub fn columns(kind: Target) -> &'static [&'static str] {
    match kind {
        Target::EndUser => &["companyId", "externalId", "email", "name", "surname"],
        _ => &["externalId", "name", "companyId"],
    }
}

/// Receives the cells of one record.
type OnRecord<'a> = dyn FnMut(Vec<&[u8]>) -> Result<(), CsvError> + 'a;

/// csv-core's push parser, fed chunk by chunk; a record's cells are handed over whole.
struct Parser {
    reader: Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    out_len: usize,
    ends_len: usize,
}

impl Parser {
    fn new() -> Self {
        Self {
            reader: Reader::new(),
            out: vec![0; 4096],
            ends: vec![0; 16],
            out_len: 0,
            ends_len: 0,
        }
    }

    /// Feeds `input`; an empty `input` is the end of the upload. Calls `record` with the cells
    /// of each record completed.
    fn feed(&mut self, mut input: &[u8], record: &mut OnRecord<'_>) -> Result<(), CsvError> {
        let at_end = input.is_empty();
        loop {
            let (result, read, written, ended) = self.reader.read_record(
                input,
                &mut self.out[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            input = &input[read..];
            self.out_len += written;
            self.ends_len += ended;
            match result {
                ReadRecordResult::InputEmpty => {
                    if !at_end {
                        return Ok(());
                    }
                }
                ReadRecordResult::OutputFull => {
                    let n = self.out.len() * 2;
                    self.out.resize(n, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                ReadRecordResult::Record => {
                    let mut cells = Vec::with_capacity(self.ends_len);
                    let mut start = 0;
                    for &end in &self.ends[..self.ends_len] {
                        cells.push(&self.out[start..end]);
                        start = end;
                    }
                    let done = record(cells);
                    self.out_len = 0;
                    self.ends_len = 0;
                    done?;
                }
                ReadRecordResult::End => return Ok(()),
            }
        }
    }
}

/// A blank line gives one empty cell; it is not a row.
fn blank(cells: &[&[u8]]) -> bool {
    cells.len() == 1 && cells[0].is_empty()
}

/// Reads the header: the known columns of `kind`, each once, the required one present.
fn header(kind: Target, cells: &[&[u8]]) -> Result<Vec<String>, CsvError> {
    let allowed = columns(kind);
    let mut names = Vec::with_capacity(cells.len());
    for (i, cell) in cells.iter().enumerate() {
        let text = std::str::from_utf8(cell)
            .map_err(|_| CsvError::Header("the header row is not UTF-8 text".into()))?;
        // A spreadsheet's byte order mark before the first name.
        let name = if i == 0 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        }
        .trim();
        if cells.len() == 1 {
            if let Some(sep) = [';', '\t'].into_iter().find(|c| name.contains(*c)) {
                let sep = if sep == ';' { "semicolons" } else { "tabs" };
                return Err(CsvError::Header(format!(
                    "the header's columns are separated by {sep}: save the file as comma-separated CSV"
                )));
            }
        }
        if !allowed.contains(&name) {
            return Err(CsvError::Header(format!(
                "unknown column '{name}'; the columns of this directory are {}",
                allowed.join(", ")
            )));
        }
        if names.iter().any(|n| n == name) {
            return Err(CsvError::Header(format!("column '{name}' appears twice")));
        }
        names.push(name.to_string());
    }
    if !names.iter().any(|n| n == allowed[0]) {
        return Err(CsvError::Header(format!(
            "the header needs a column '{}'",
            allowed[0]
        )));
    }
    Ok(names)
}

/// An upload being received: checked as it streams into a temporary file.
pub struct Spooler {
    kind: Target,
    parser: Parser,
    file: std::fs::File,
    header: Option<Vec<String>>,
    rows: usize,
    bytes: u64,
}

impl Spooler {
    pub fn new(kind: Target) -> Result<Self, CsvError> {
        Ok(Self {
            kind,
            parser: Parser::new(),
            file: tempfile::tempfile().map_err(io)?,
            header: None,
            rows: 0,
            bytes: 0,
        })
    }

    /// The next piece of the body.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), CsvError> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.bytes += chunk.len() as u64;
        if self.bytes > MAX_BYTES {
            return Err(CsvError::TooLarge);
        }
        self.file.write_all(chunk).map_err(io)?;
        self.check(chunk)
    }

    fn check(&mut self, chunk: &[u8]) -> Result<(), CsvError> {
        let (kind, header, rows) = (self.kind, &mut self.header, &mut self.rows);
        self.parser.feed(chunk, &mut |cells| {
            if blank(&cells) {
                return Ok(());
            }
            let Some(names) = header.as_ref() else {
                *header = Some(self::header(kind, &cells)?);
                return Ok(());
            };
            let row = *rows;
            if cells.len() != names.len() {
                return Err(CsvError::Row {
                    row,
                    message: format!("has {} cells; the header has {}", cells.len(), names.len()),
                });
            }
            if cells.iter().any(|c| std::str::from_utf8(c).is_err()) {
                return Err(CsvError::Row {
                    row,
                    message: "is not UTF-8 text".into(),
                });
            }
            *rows += 1;
            if *rows > MAX_ROWS {
                return Err(CsvError::TooManyRows);
            }
            Ok(())
        })
    }

    /// The whole upload, checked, ready to be read back in batches.
    pub fn finish(mut self) -> Result<Spooled, CsvError> {
        self.check(&[])?;
        let header = self.header.ok_or(CsvError::Empty)?;
        self.file.flush().map_err(io)?;
        self.file.rewind().map_err(io)?;
        Ok(Spooled {
            header,
            rows: self.rows,
            file: self.file,
            parser: Parser::new(),
            seen_header: false,
            ended: false,
            buffer: vec![0; 64 * 1024],
            pending: Vec::new(),
        })
    }
}

/// A checked upload, read back a batch at a time.
pub struct Spooled {
    header: Vec<String>,
    rows: usize,
    file: std::fs::File,
    parser: Parser,
    seen_header: bool,
    ended: bool,
    buffer: Vec<u8>,
    /// Rows read and not yet handed over (a read may complete more than a batch).
    pending: Vec<Value>,
}

impl Spooled {
    /// Data rows in the upload.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The next rows (at most [`MAX_BATCH`]), as the JSON objects a batch holds; `None` after
    /// the last.
    pub fn next_batch(&mut self) -> Result<Option<Vec<Value>>, CsvError> {
        while self.pending.len() < MAX_BATCH && !self.ended {
            let n = self.file.read(&mut self.buffer).map_err(io)?;
            let (header, seen, pending) = (&self.header, &mut self.seen_header, &mut self.pending);
            let mut take = |cells: Vec<&[u8]>| -> Result<(), CsvError> {
                if blank(&cells) {
                    return Ok(());
                }
                if !*seen {
                    *seen = true;
                    return Ok(());
                }
                let mut row = Map::new();
                for (name, cell) in header.iter().zip(cells) {
                    let text = String::from_utf8_lossy(cell);
                    if !text.is_empty() {
                        row.insert(name.clone(), Value::String(text.into_owned()));
                    }
                }
                pending.push(Value::Object(row));
                Ok(())
            };
            self.parser.feed(&self.buffer[..n], &mut take)?;
            if n == 0 {
                self.ended = true;
            }
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let n = self.pending.len().min(MAX_BATCH);
        Ok(Some(self.pending.drain(..n).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spool(kind: Target, body: &[u8], piece: usize) -> Result<Spooled, CsvError> {
        let mut s = Spooler::new(kind)?;
        for chunk in body.chunks(piece.max(1)) {
            s.push(chunk)?;
        }
        s.finish()
    }

    fn all(mut s: Spooled) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(b) = s.next_batch().unwrap() {
            out.extend(b);
        }
        out
    }

    #[test]
    fn rows_come_back_as_json_objects_whatever_the_pieces_they_arrived_in() {
        let body = "\u{feff}companyId,externalId,email,name,surname\r\n\
                    acme,u1,ann@acme.test,Ann,\"Smith, Jr\"\r\n\
                    \n\
                    acme,,bob@acme.test,\"Bob \"\"B\"\"\",\n\
                    beta,u3,,,";
        for piece in [1, 2, 7, 64, 4096] {
            let s = spool(Target::EndUser, body.as_bytes(), piece).unwrap();
            assert_eq!(s.rows(), 3, "piece {piece}");
            assert_eq!(
                all(s),
                vec![
                    json!({"companyId": "acme", "externalId": "u1", "email": "ann@acme.test", "name": "Ann", "surname": "Smith, Jr"}),
                    json!({"companyId": "acme", "email": "bob@acme.test", "name": "Bob \"B\""}),
                    json!({"companyId": "beta", "externalId": "u3"}),
                ],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn batches_hold_at_most_the_batch_size() {
        let mut body = String::from("externalId,name\n");
        for i in 0..2500 {
            body.push_str(&format!("c{i},Company {i}\n"));
        }
        let mut s = spool(Target::Company, body.as_bytes(), 8192).unwrap();
        let mut sizes = Vec::new();
        let mut ids = Vec::new();
        while let Some(b) = s.next_batch().unwrap() {
            sizes.push(b.len());
            ids.extend(
                b.iter()
                    .map(|r| r["externalId"].as_str().unwrap().to_string()),
            );
        }
        assert_eq!(ids.len(), 2500);
        assert_eq!(ids[1234], "c1234");
        assert_eq!(sizes, vec![MAX_BATCH, MAX_BATCH, 500]);
    }

    #[test]
    fn a_bad_shape_is_refused_naming_the_row_before_anything_is_read_back() {
        let cases: [(&str, Target, CsvError); 7] = [
            ("", Target::Company, CsvError::Empty),
            (
                "externalId,plan\nc1,gold\n",
                Target::Company,
                CsvError::Header(
                    "unknown column 'plan'; the columns of this directory are externalId, name, companyId".into(),
                ),
            ),
            (
                "name\nAcme\n",
                Target::Company,
                CsvError::Header("the header needs a column 'externalId'".into()),
            ),
            (
                "externalId;name\nc1;A\n",
                Target::Company,
                CsvError::Header(
                    "the header's columns are separated by semicolons: save the file as comma-separated CSV".into(),
                ),
            ),
            (
                "externalId,externalId\n",
                Target::Company,
                CsvError::Header("column 'externalId' appears twice".into()),
            ),
            (
                "externalId,name\nc1,A\nc2\n",
                Target::Company,
                CsvError::Row {
                    row: 1,
                    message: "has 1 cells; the header has 2".into(),
                },
            ),
            (
                "externalId,name\nc1,\"A,B\",C\n",
                Target::Company,
                CsvError::Row {
                    row: 0,
                    message: "has 3 cells; the header has 2".into(),
                },
            ),
        ];
        for (body, kind, want) in cases {
            let got = spool(kind, body.as_bytes(), 3).err();
            assert_eq!(got, Some(want), "{body:?}");
        }
        let latin1 = b"externalId,name\nc1,Caf\xe9\n";
        assert_eq!(
            spool(Target::Company, latin1, 5).err(),
            Some(CsvError::Row {
                row: 0,
                message: "is not UTF-8 text".into()
            })
        );
    }

    #[test]
    fn more_than_the_row_limit_is_refused() {
        let mut s = Spooler::new(Target::Company).unwrap();
        s.push(b"externalId\n").unwrap();
        let rows = "c\n".repeat(MAX_ROWS);
        s.push(rows.as_bytes()).unwrap();
        assert_eq!(s.push(b"c\n"), Err(CsvError::TooManyRows));
    }
}
