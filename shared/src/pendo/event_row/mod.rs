//! One row of an event pipeline (see `pendo::pipelines::col`), parsed from its raw JSON bytes.
//!
//! Rows have a known flat shape (`{"day":…,"appId":…,"company":"…",…}`), so the hot path reads
//! them with a small hand-written parser that borrows every string. Anything it is not sure
//! about — an escape in a string, a non-integer or very long number, `-0`, a nested value, a
//! repeated key, invalid UTF-8, a control character, malformed JSON — makes it give up, and the
//! row is parsed by `serde_json` instead, so the result (value or error) is always exactly the
//! serde one. `tests::fast_path_equals_serde` checks that on generated rows.

use super::RowError;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// A scalar read as text: strings as they are, numbers and booleans formatted.
#[derive(Debug, Clone, PartialEq)]
pub struct Loose<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Loose(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Loose(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Loose(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Loose(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Loose(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Loose(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Loose(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields of an event row the transform reads; any other key is ignored.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub(crate) struct EventRow<'a> {
    pub day: Option<i64>,
    #[serde(rename = "appId")]
    pub app_id: Option<i64>,
    #[serde(rename = "numEvents", default)]
    pub num_events: Option<f64>,
    #[serde(rename = "numMinutes", default)]
    pub num_minutes: Option<f64>,
    #[serde(borrow, default)]
    pub company: Option<Loose<'a>>,
    #[serde(borrow, default, rename = "endUser")]
    pub end_user: Option<Loose<'a>>,
    #[serde(borrow, default)]
    pub asset: Option<Loose<'a>>,
    #[serde(borrow, default)]
    pub project: Option<Loose<'a>>,
    #[serde(borrow, default)]
    pub email: Option<Loose<'a>>,
    #[serde(borrow, default)]
    pub name: Option<Loose<'a>>,
    #[serde(borrow, default)]
    pub surname: Option<Loose<'a>>,
    /// The page or feature of a shared call's row (`col::ITEM`).
    #[serde(borrow, default)]
    pub item: Option<Loose<'a>>,
}

impl<'a> EventRow<'a> {
    /// Parses a row: the fast path when it applies, `serde_json` otherwise (same result).
    #[inline]
    pub fn parse(raw: &'a [u8]) -> Result<Self, RowError> {
        match fast(raw) {
            Some(row) => Ok(row),
            None => Self::parse_slow(raw),
        }
    }

    #[cold]
    #[inline(never)]
    fn parse_slow(raw: &'a [u8]) -> Result<Self, RowError> {
        serde_json::from_slice(raw).map_err(|e| RowError(format!("bad event row: {e}")))
    }

    /// The row that starts at `bytes[0]` (its `{`) and the number of bytes it takes, when it is
    /// a flat row the fast path reads (`None` otherwise, and when the bytes end before the
    /// row does). The row is exactly what [`EventRow::parse`] gives for those bytes.
    #[inline]
    pub fn parse_prefix(bytes: &'a [u8]) -> Option<(Self, usize)> {
        let mut c = Cursor { b: bytes, i: 0 };
        let fields = object(&mut c)?;
        let len = c.i;
        Some((fields.into_row(bytes.get(..len)?)?, len))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Day,
    App,
    Events,
    Minutes,
    Company,
    EndUser,
    Asset,
    Project,
    Email,
    Name,
    Surname,
    Item,
    Other,
}

#[inline]
fn field(key: &[u8]) -> Field {
    match key {
        b"day" => Field::Day,
        b"appId" => Field::App,
        b"numEvents" => Field::Events,
        b"numMinutes" => Field::Minutes,
        b"company" => Field::Company,
        b"endUser" => Field::EndUser,
        b"asset" => Field::Asset,
        b"project" => Field::Project,
        b"email" => Field::Email,
        b"name" => Field::Name,
        b"surname" => Field::Surname,
        b"item" => Field::Item,
        _ => Field::Other,
    }
}

/// Where a text value is: a span of the row's bytes, or a literal (`true`, `false`).
#[derive(Clone, Copy)]
enum Text {
    Span(usize, usize),
    Literal(&'static str),
}

/// A scalar as the fast path reads it.
enum Scalar {
    Null,
    Bool(&'static str),
    /// An integer of at most 18 digits (not `-0`), with the span of its literal text.
    Int(i64, usize, usize),
    /// The span of a string's body.
    Str(usize, usize),
}

/// The fields of a row as spans, before the row is checked as UTF-8 (its end is not known
/// until it is parsed).
#[derive(Default)]
struct Fields {
    day: Option<i64>,
    app_id: Option<i64>,
    num_events: Option<f64>,
    num_minutes: Option<f64>,
    text: [Option<Text>; 8],
}

impl Fields {
    /// The row, reading the texts out of `row` (the row's bytes, checked as UTF-8 here: every
    /// span starts and ends at an ASCII quote or digit, so it lies on character boundaries).
    #[inline]
    fn into_row(self, row: &[u8]) -> Option<EventRow<'_>> {
        let s = std::str::from_utf8(row).ok()?;
        let text = |t: Option<Text>| -> Option<Option<Loose<'_>>> {
            Some(match t {
                None => None,
                Some(Text::Span(a, b)) => Some(Loose(Cow::Borrowed(s.get(a..b)?))),
                Some(Text::Literal(l)) => Some(Loose(Cow::Borrowed(l))),
            })
        };
        let [company, end_user, asset, project, email, name, surname, item] = self.text;
        Some(EventRow {
            day: self.day,
            app_id: self.app_id,
            num_events: self.num_events,
            num_minutes: self.num_minutes,
            company: text(company)?,
            end_user: text(end_user)?,
            asset: text(asset)?,
            project: text(project)?,
            email: text(email)?,
            name: text(name)?,
            surname: text(surname)?,
            item: text(item)?,
        })
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    /// The span of the body of a string whose opening quote was just read: no escapes, no
    /// control characters.
    #[inline]
    fn string(&mut self) -> Option<(usize, usize)> {
        let start = self.i;
        // Eight bytes at a time while they are plain; the byte loop below reads what stops it.
        while let Some(word) = self.b.get(self.i..self.i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            let stops = stop_bytes(u64::from_le_bytes(w));
            if stops != 0 {
                self.i += (stops.trailing_zeros() / 8) as usize;
                break;
            }
            self.i += 8;
        }
        loop {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => {}
            }
        }
        Some((start, self.i - 1))
    }

    /// An integer whose first byte `first` was just read.
    #[inline]
    fn int(&mut self, first: u8) -> Option<Scalar> {
        let start = self.i - 1;
        let negative = first == b'-';
        let lead = if negative { self.next()? } else { first };
        if !lead.is_ascii_digit() {
            return None;
        }
        let mut v = i64::from(lead - b'0');
        let mut digits = 1;
        if lead != b'0' {
            while let Some(&c) = self.b.get(self.i) {
                if !c.is_ascii_digit() {
                    break;
                }
                digits += 1;
                if digits > 18 {
                    return None;
                }
                v = v * 10 + i64::from(c - b'0');
                self.i += 1;
            }
        } else if negative {
            return None; // `-0` is a float to serde_json
        }
        // What follows must end the number (`.`, `e` or a digit after a leading zero make the
        // caller see something other than `,` or `}` and give up).
        Some(Scalar::Int(if negative { -v } else { v }, start, self.i))
    }

    fn literal(&mut self, rest: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + rest.len())? == rest {
            self.i += rest.len();
            Some(())
        } else {
            None
        }
    }

    #[inline]
    fn scalar(&mut self) -> Option<Scalar> {
        match self.next()? {
            b'"' => self.string().map(|(a, b)| Scalar::Str(a, b)),
            b'n' => self.literal(b"ull").map(|_| Scalar::Null),
            b't' => self.literal(b"rue").map(|_| Scalar::Bool("true")),
            b'f' => self.literal(b"alse").map(|_| Scalar::Bool("false")),
            c @ (b'-' | b'0'..=b'9') => self.int(c),
            _ => None,
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The bytes of `w` (little-endian) that end a plain string's body (`"`, `\\`, a control
/// character) have their high bit set in the result; the lowest set bit is always such a byte
/// (bits above it may be false alarms, from the borrows of the subtractions).
#[inline]
fn stop_bytes(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | control
}

fn int_field(s: Scalar) -> Option<Option<i64>> {
    match s {
        Scalar::Null => Some(None),
        Scalar::Int(v, _, _) => Some(Some(v)),
        _ => None,
    }
}

fn num_field(s: Scalar) -> Option<Option<f64>> {
    match s {
        Scalar::Null => Some(None),
        // serde_json reads an integer as u64/i64 and converts it with `as f64`.
        Scalar::Int(v, _, _) => Some(Some(v as f64)),
        _ => None,
    }
}

fn text_field(s: Scalar) -> Option<Text> {
    match s {
        Scalar::Null => None,
        Scalar::Bool(t) => Some(Text::Literal(t)),
        // Integers format back to their literal text (JSON has no leading zeros or `+`).
        Scalar::Int(_, a, b) | Scalar::Str(a, b) => Some(Text::Span(a, b)),
    }
}

/// The fast path: `None` when the row is anything but a flat object of plain scalars (with
/// whitespace around it). (serde_json accepts invalid UTF-8 inside an ignored value; such a
/// row is the slow path's.)
#[inline]
fn fast(raw: &[u8]) -> Option<EventRow<'_>> {
    let mut c = Cursor { b: raw, i: 0 };
    c.ws();
    let fields = object(&mut c)?;
    c.ws();
    if c.i != raw.len() {
        return None;
    }
    fields.into_row(raw)
}

/// A flat object of plain scalars starting at the cursor (its `{`); the cursor ends right
/// after the closing `}`.
#[inline]
fn object(c: &mut Cursor<'_>) -> Option<Fields> {
    let mut row = Fields::default();
    let mut seen = 0u16;
    if c.next()? != b'{' {
        return None;
    }
    c.ws();
    if c.b.get(c.i) == Some(&b'}') {
        c.i += 1;
        return Some(row);
    }
    loop {
        if c.next()? != b'"' {
            return None;
        }
        let (ka, kb) = c.string()?;
        let f = field(c.b.get(ka..kb)?);
        if f != Field::Other {
            let bit = 1u16 << (f as u16);
            if seen & bit != 0 {
                return None; // serde reports the duplicate
            }
            seen |= bit;
        }
        c.ws();
        if c.next()? != b':' {
            return None;
        }
        c.ws();
        let v = c.scalar()?;
        match f {
            Field::Day => row.day = int_field(v)?,
            Field::App => row.app_id = int_field(v)?,
            Field::Events => row.num_events = num_field(v)?,
            Field::Minutes => row.num_minutes = num_field(v)?,
            Field::Company => row.text[0] = text_field(v),
            Field::EndUser => row.text[1] = text_field(v),
            Field::Asset => row.text[2] = text_field(v),
            Field::Project => row.text[3] = text_field(v),
            Field::Email => row.text[4] = text_field(v),
            Field::Name => row.text[5] = text_field(v),
            Field::Surname => row.text[6] = text_field(v),
            Field::Item => row.text[7] = text_field(v),
            Field::Other => {}
        }
        c.ws();
        match c.next()? {
            b',' => c.ws(),
            b'}' => return Some(row),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests;
