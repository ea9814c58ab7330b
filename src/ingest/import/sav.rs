//! SPSS system files (`.sav`, bytecode-compressed or not) and `.zsav` (zlib), read as
//! haven::read_sav(user_na = TRUE) sees them: variable labels, value labels, user-missing
//! values and ranges kept beside the codes.
//!
//! The layout follows the PSPP manual, appendix "System File Format"
//! (<https://www.gnu.org/software/pspp/pspp-dev/html_node/System-File-Format.html>):
//! the file header record (176 bytes), variable records (type 2) with their labels and
//! missing values, value labels (types 3 and 4), documents (type 6), extension records
//! (type 7: 3 machine integer info, 4 floating point info, 13 long variable names, 14 very
//! long strings, 20 character encoding; others skipped), the dictionary terminator (999),
//! then the cases: raw 8-byte units, bytecode-compressed blocks (commands 0 padding,
//! 1-251 value minus bias, 252 end, 253 raw unit follows, 254 eight blanks, 255 system
//! missing), or for `.zsav` zlib blocks of that bytecode described by the ZLIB header and
//! trailer. Value labels of long strings (subtype 21) and their missing values (22) are not
//! read: the map can recode such text directly.

use std::io::Read;
use std::path::Path;

use encoding_rs::Encoding;

use super::error::ImportError;
use super::source::{Code, ColumnData, SourceColumn, SourceFormat, SourceTable, UserMissing};
use crate::ingest::Date;

/// Reads a `.sav` or `.zsav` file.
pub fn read_sav(path: &Path) -> Result<SourceTable, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    parse_sav(&bytes, path)
}

/// Parses the bytes of a system file; `path` names it in errors.
pub fn parse_sav(bytes: &[u8], path: &Path) -> Result<SourceTable, ImportError> {
    Parser::new(bytes, path)?.parse()
}

/// One variable record (type 2).
struct VarRecord {
    /// 0 numeric, 1-255 string width, -1 continuation of the previous string.
    width: i32,
    short_name: String,
    label: Option<Vec<u8>>,
    missing_n: i32,
    missing: Vec<[u8; 8]>,
    print_format: i32,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn i32(&mut self) -> Option<i32> {
        let s: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(if self.big_endian {
            i32::from_be_bytes(s)
        } else {
            i32::from_le_bytes(s)
        })
    }

    fn i64(&mut self) -> Option<i64> {
        let s: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(if self.big_endian {
            i64::from_be_bytes(s)
        } else {
            i64::from_le_bytes(s)
        })
    }

    fn f64(&mut self) -> Option<f64> {
        let s: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(f64_of(s, self.big_endian))
    }

    fn unit(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }
}

fn f64_of(s: [u8; 8], big_endian: bool) -> f64 {
    if big_endian {
        f64::from_be_bytes(s)
    } else {
        f64::from_le_bytes(s)
    }
}

/// SPSS's system-missing value, -DBL_MAX.
const SYSMIS: f64 = -f64::MAX;

/// Print format types that hold dates or date-times (PSPP manual, "Variable Record": format
/// types 20 DATE, 22 DATETIME, 23 ADATE, 24 JDATE, 28 QYR, 29 MOYR, 30 WKYR, 38 EDATE,
/// 39 SDATE, 41 YMDHMS).
fn is_date_format(print_format: i32) -> bool {
    matches!(
        (print_format >> 16) & 0xff,
        20 | 22 | 23 | 24 | 28 | 29 | 30 | 38 | 39 | 41
    )
}

/// Seconds since 1582-10-14 (the SPSS epoch) as a date.
fn spss_date(seconds: f64) -> Option<Date> {
    let epoch = Date::from_ymd(1582, 10, 14)?;
    let days = (seconds / 86_400.0).floor();
    if !days.is_finite() || days.abs() > 5.0e6 {
        return None;
    }
    Some(Date::from_days(epoch.days() + days as i32))
}

struct Parser<'a> {
    c: Cursor<'a>,
    path: &'a Path,
    zlib: bool,
    compression: i32,
    n_cases: i32,
    bias: f64,
}

/// A dictionary variable (continuations merged) with its place in a case.
struct Var {
    /// 1-based position of its first record among the variable records (value labels
    /// refer to it).
    record_index: usize,
    width: i32,
    name: String,
    label: Option<Vec<u8>>,
    missing_n: i32,
    missing: Vec<[u8; 8]>,
    print_format: i32,
    /// Segments in the case: (first unit, units, bytes used). One for all but very long
    /// strings.
    segments: Vec<(usize, usize, usize)>,
    value_labels: Vec<([u8; 8], Vec<u8>)>,
}

impl<'a> Parser<'a> {
    fn new(b: &'a [u8], path: &'a Path) -> Result<Self, ImportError> {
        let bad = |m: &str| ImportError::Malformed {
            file: path.to_path_buf(),
            message: m.to_string(),
        };
        let magic = b
            .get(..4)
            .ok_or_else(|| bad("too short for an SPSS file"))?;
        let zlib =
            match magic {
                b"$FL2" => false,
                b"$FL3" => true,
                _ => return Err(bad(
                    "not an SPSS system file (no $FL2/$FL3 signature); save it from SPSS as .sav",
                )),
            };
        let layout = b.get(64..68).ok_or_else(|| bad("truncated header"))?;
        let le = i32::from_le_bytes([layout[0], layout[1], layout[2], layout[3]]);
        let big_endian = !matches!(le, 2 | 3);
        let mut c = Cursor {
            b,
            pos: 68,
            big_endian,
        };
        let header = (|| {
            let _nominal_case_size = c.i32()?;
            let compression = c.i32()?;
            let _weight = c.i32()?;
            let n_cases = c.i32()?;
            let bias = c.f64()?;
            c.take(9 + 8 + 64 + 3)?;
            Some((compression, n_cases, bias))
        })();
        let (compression, n_cases, bias) = header.ok_or_else(|| bad("truncated header"))?;
        Ok(Parser {
            c,
            path,
            zlib,
            compression,
            n_cases,
            bias,
        })
    }

    fn bad(&self, message: impl Into<String>) -> ImportError {
        ImportError::Malformed {
            file: self.path.to_path_buf(),
            message: format!("{} (at byte {})", message.into(), self.c.pos),
        }
    }

    /// Reads the whole file: the dictionary, then the cases.
    fn parse(mut self) -> Result<SourceTable, ImportError> {
        let dict = self.read_dictionary()?;
        let encoding = pick_encoding(dict.encoding_name.as_deref(), dict.character_code);
        let (vars, case_units) = dictionary_vars(dict, encoding);
        let (cols, n_rows) = self.read_cases(&vars, case_units, encoding)?;
        let columns = source_columns(&vars, cols, self.c.big_endian, encoding);
        Ok(SourceTable {
            path: self.path.to_path_buf(),
            format: if self.zlib {
                SourceFormat::Zsav
            } else {
                SourceFormat::Sav
            },
            columns,
            n_rows,
        })
    }

    /// Reads the dictionary records up to and including the terminator (999).
    fn read_dictionary(&mut self) -> Result<Dictionary, ImportError> {
        let mut dict = Dictionary::default();
        loop {
            let rec = self
                .c
                .i32()
                .ok_or_else(|| self.bad("dictionary ends early"))?;
            match rec {
                2 => {
                    let r = self
                        .var_record()
                        .ok_or_else(|| self.bad("truncated variable record"))?;
                    dict.records.push(r);
                }
                3 => {
                    let set = self
                        .value_labels()
                        .ok_or_else(|| self.bad("truncated value labels"))?;
                    dict.label_sets.push(set);
                }
                6 => self.skip_document()?,
                7 => self.extension_into(&mut dict)?,
                999 => {
                    self.c
                        .i32()
                        .ok_or_else(|| self.bad("truncated dictionary terminator"))?;
                    return Ok(dict);
                }
                other => return Err(self.bad(format!("unknown record type {other}"))),
            }
        }
    }

    /// Skips a document record (type 6): a count of 80-byte lines.
    fn skip_document(&mut self) -> Result<(), ImportError> {
        let n = self.c.i32().ok_or_else(|| self.bad("truncated document"))?;
        let len = usize::try_from(n).map_err(|_| self.bad("negative document size"))?;
        self.c
            .take(len.saturating_mul(80))
            .ok_or_else(|| self.bad("truncated document"))?;
        Ok(())
    }

    /// Reads an extension record (type 7) and keeps what the dictionary needs of it:
    /// the character code (subtype 3), long names (13), very long strings (14) and the
    /// encoding name (20).
    fn extension_into(&mut self, dict: &mut Dictionary) -> Result<(), ImportError> {
        let (sub, data) = self
            .extension()
            .ok_or_else(|| self.bad("truncated extension record"))?;
        match sub {
            // machine integer info: the 8th integer is the character code
            3 if data.len() >= 32 => {
                let s = &data[28..32];
                let v = [s[0], s[1], s[2], s[3]];
                dict.character_code = Some(if self.c.big_endian {
                    i32::from_be_bytes(v)
                } else {
                    i32::from_le_bytes(v)
                });
            }
            13 => dict.long_names = data.to_vec(),
            14 => dict.very_long = data.to_vec(),
            20 => dict.encoding_name = Some(String::from_utf8_lossy(data).trim().to_string()),
            _ => {}
        }
        Ok(())
    }

    /// Reads the cases (raw, bytecode or zlib) into one builder per variable; returns them
    /// and the number of cases.
    fn read_cases(
        &mut self,
        vars: &[Var],
        case_units: usize,
        encoding: &'static Encoding,
    ) -> Result<(Vec<Builder>, usize), ImportError> {
        let data_start = self.c.pos;
        let stream: std::borrow::Cow<'_, [u8]> = if self.zlib {
            std::borrow::Cow::Owned(self.inflate(data_start)?)
        } else {
            std::borrow::Cow::Borrowed(self.c.b.get(data_start..).unwrap_or(&[]))
        };
        let compressed = self.zlib || self.compression == 1;
        let big = self.c.big_endian;
        let mut units = UnitReader {
            b: &stream,
            pos: 0,
            commands: [0; 8],
            next_command: 8,
            compressed,
            bias: self.bias,
            big_endian: big,
        };
        let expected = usize::try_from(self.n_cases).ok();
        // a damaged header must not make us reserve more than the data can hold: a case of
        // `case_units` units takes at least `case_units` command bytes (one per unit)
        if case_units > stream.len().max(8) * 8 {
            return Err(ImportError::Malformed {
                file: self.path.to_path_buf(),
                message: format!(
                    "the variable records describe {case_units} 8-byte units per case, more than the data section holds"
                ),
            });
        }
        let room = (stream.len() / case_units.max(1)).saturating_add(1);
        let capacity = expected.unwrap_or(0).min(room);
        let mut case = vec![[0u8; 8]; case_units];
        let mut cols: Vec<Builder> = vars
            .iter()
            .map(|v| {
                if v.width == 0 && !is_date_format(v.print_format) {
                    Builder::Num(Vec::with_capacity(capacity))
                } else {
                    Builder::Text(Vec::with_capacity(capacity))
                }
            })
            .collect();
        let mut n_rows = 0usize;
        'cases: loop {
            if expected.is_some_and(|n| n_rows >= n) {
                break;
            }
            for (k, slot) in case.iter_mut().enumerate() {
                match units.next() {
                    Some(u) => *slot = u,
                    None if k == 0 => break 'cases,
                    None => {
                        return Err(ImportError::Malformed {
                            file: self.path.to_path_buf(),
                            message: format!("case {} ends early (data truncated)", n_rows + 1),
                        })
                    }
                }
            }
            push_case(vars, &mut cols, &case, big, encoding);
            n_rows += 1;
        }
        Ok((cols, n_rows))
    }

    fn var_record(&mut self) -> Option<VarRecord> {
        let width = self.c.i32()?;
        let has_label = self.c.i32()?;
        let missing_n = self.c.i32()?;
        let print_format = self.c.i32()?;
        let _write = self.c.i32()?;
        let name = self.c.take(8)?;
        let short_name = String::from_utf8_lossy(name).trim_end().to_string();
        let label = if has_label == 1 {
            let len = usize::try_from(self.c.i32()?).ok()?;
            let raw = self.c.take(len.div_ceil(4) * 4)?;
            // decoded once the encoding is known
            Some(raw.get(..len)?.to_vec())
        } else {
            None
        };
        if !(-3..=3).contains(&missing_n) {
            return None;
        }
        let mut missing = Vec::new();
        for _ in 0..missing_n.unsigned_abs() {
            missing.push(self.c.unit()?);
        }
        Some(VarRecord {
            width,
            short_name,
            label,
            missing_n,
            missing,
            print_format,
        })
    }

    #[allow(clippy::type_complexity)]
    fn value_labels(&mut self) -> Option<(Vec<([u8; 8], Vec<u8>)>, Vec<usize>)> {
        let n = usize::try_from(self.c.i32()?).ok()?;
        let mut labels = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let value = self.c.unit()?;
            let len = *self.c.take(1)?.first()? as usize;
            let padded = (len + 1).div_ceil(8) * 8 - 1;
            let raw = self.c.take(padded)?;
            labels.push((value, raw.get(..len)?.to_vec()));
        }
        if self.c.i32()? != 4 {
            return None;
        }
        let k = usize::try_from(self.c.i32()?).ok()?;
        let mut idx = Vec::with_capacity(k.min(1 << 16));
        for _ in 0..k {
            idx.push(usize::try_from(self.c.i32()?).ok()?);
        }
        Some((labels, idx))
    }

    fn extension(&mut self) -> Option<(i32, &'a [u8])> {
        let sub = self.c.i32()?;
        let size = usize::try_from(self.c.i32()?).ok()?;
        let count = usize::try_from(self.c.i32()?).ok()?;
        let data = self.c.take(size.checked_mul(count)?)?;
        Some((sub, data))
    }

    /// The bytecode stream of a `.zsav`: the zlib blocks listed in the ZLIB trailer,
    /// inflated and concatenated (PSPP manual, "System File Format", ZLIB data).
    fn inflate(&mut self, start: usize) -> Result<Vec<u8>, ImportError> {
        let err = |m: &str| ImportError::Malformed {
            file: self.path.to_path_buf(),
            message: format!("zlib data: {m}"),
        };
        let mut h = Cursor {
            b: self.c.b,
            pos: start,
            big_endian: self.c.big_endian,
        };
        let (_zheader, ztrailer, _len) = (|| Some((h.i64()?, h.i64()?, h.i64()?)))()
            .ok_or_else(|| err("truncated zlib header"))?;
        let mut t = Cursor {
            b: self.c.b,
            pos: usize::try_from(ztrailer).map_err(|_| err("bad trailer offset"))?,
            big_endian: self.c.big_endian,
        };
        let (_bias, _zero, _block, n_blocks) =
            (|| Some((t.i64()?, t.i64()?, t.i32()?, t.i32()?)))()
                .ok_or_else(|| err("truncated zlib trailer"))?;
        let mut out = Vec::new();
        for _ in 0..n_blocks.max(0) {
            let (_u_ofs, c_ofs, u_size, c_size) =
                (|| Some((t.i64()?, t.i64()?, t.i32()?, t.i32()?)))()
                    .ok_or_else(|| err("truncated zlib trailer"))?;
            let from = usize::try_from(c_ofs).map_err(|_| err("bad block offset"))?;
            let len = usize::try_from(c_size).map_err(|_| err("bad block size"))?;
            let block = from
                .checked_add(len)
                .and_then(|end| self.c.b.get(from..end))
                .ok_or_else(|| err("block beyond the end of the file"))?;
            let before = out.len();
            flate2::read::ZlibDecoder::new(block)
                .read_to_end(&mut out)
                .map_err(|e| err(&format!("cannot inflate a block: {e}")))?;
            if i64::try_from(out.len() - before).ok() != Some(i64::from(u_size)) {
                return Err(err(
                    "a block inflates to another size than the trailer says",
                ));
            }
        }
        Ok(out)
    }
}

/// A value label set: (labels, 1-based record indices).
type LabelSet = (Vec<([u8; 8], Vec<u8>)>, Vec<usize>);

/// What the dictionary records say, before the variables are put together.
#[derive(Default)]
struct Dictionary {
    records: Vec<VarRecord>,
    label_sets: Vec<LabelSet>,
    long_names: Vec<u8>,
    very_long: Vec<u8>,
    encoding_name: Option<String>,
    character_code: Option<i32>,
}

/// The dictionary variables with their units in the case (continuation records skipped),
/// their value labels, very long strings merged and long names; returns them and the
/// number of 8-byte units per case.
fn dictionary_vars(dict: Dictionary, encoding: &'static Encoding) -> (Vec<Var>, usize) {
    let dec = |b: &[u8]| decode(encoding, b);
    let mut vars: Vec<Var> = Vec::new();
    let mut unit = 0usize;
    for (i, r) in dict.records.iter().enumerate() {
        if r.width < 0 {
            continue;
        }
        let units = if r.width == 0 {
            1
        } else {
            (r.width as usize).div_ceil(8)
        };
        vars.push(Var {
            record_index: i + 1,
            width: r.width,
            name: r.short_name.clone(),
            label: r.label.clone(),
            missing_n: r.missing_n,
            missing: r.missing.clone(),
            print_format: r.print_format,
            segments: vec![(unit, units, r.width.max(8) as usize)],
            value_labels: Vec::new(),
        });
        unit += units;
    }
    let case_units = unit;
    for (labels, indices) in dict.label_sets {
        for idx in indices {
            if let Some(v) = vars.iter_mut().find(|v| v.record_index == idx) {
                v.value_labels.extend(labels.iter().cloned());
            }
        }
    }
    merge_very_long_strings(&mut vars, &dec(&dict.very_long));
    // long variable names: SHORT=Long pairs separated by tabs
    for pair in dec(&dict.long_names).split('\t') {
        if let Some((short, long)) = pair.split_once('=') {
            if let Some(v) = vars
                .iter_mut()
                .find(|v| v.name.eq_ignore_ascii_case(short.trim()))
            {
                v.name = long.trim_end_matches('\0').to_string();
            }
        }
    }
    (vars, case_units)
}

/// Appends one case's values to the builders: numbers (system-missing as NaN), dates as
/// ISO text, strings decoded and right-trimmed (blank as empty).
fn push_case(
    vars: &[Var],
    cols: &mut [Builder],
    case: &[[u8; 8]],
    big: bool,
    encoding: &'static Encoding,
) {
    for (v, col) in vars.iter().zip(cols.iter_mut()) {
        match col {
            Builder::Num(x) => {
                let u = v
                    .segments
                    .first()
                    .and_then(|s| case.get(s.0))
                    .copied()
                    .unwrap_or([0; 8]);
                let f = f64_of(u, big);
                x.push(if f == SYSMIS || f.is_nan() {
                    f64::NAN
                } else {
                    f
                });
            }
            Builder::Text(x) if v.width == 0 => {
                // a date
                let u = v
                    .segments
                    .first()
                    .and_then(|s| case.get(s.0))
                    .copied()
                    .unwrap_or([0; 8]);
                let f = f64_of(u, big);
                x.push(if f == SYSMIS {
                    None
                } else {
                    spss_date(f).map(|d| d.to_string())
                });
            }
            Builder::Text(x) => {
                let mut raw: Vec<u8> = Vec::with_capacity(v.width as usize);
                for &(first, n, used) in &v.segments {
                    let mut seg: Vec<u8> = Vec::with_capacity(n * 8);
                    for u in case.get(first..first + n).unwrap_or(&[]) {
                        seg.extend_from_slice(u);
                    }
                    seg.truncate(used);
                    raw.extend_from_slice(&seg);
                }
                let s = decode(encoding, &raw);
                let s = s.trim_end_matches([' ', '\0']);
                x.push((!s.trim().is_empty()).then(|| s.to_string()));
            }
        }
    }
}

/// The source columns: each variable's data with its decoded label, value labels and
/// user-missing values.
fn source_columns(
    vars: &[Var],
    cols: Vec<Builder>,
    big: bool,
    encoding: &'static Encoding,
) -> Vec<SourceColumn> {
    let dec = |b: &[u8]| decode(encoding, b);
    vars.iter()
        .zip(cols)
        .map(|(v, b)| {
            let numeric = v.width == 0;
            let value_labels = v
                .value_labels
                .iter()
                .map(|(val, lab)| {
                    let code = if numeric {
                        Code::Num(f64_of(*val, big))
                    } else {
                        Code::Text(dec(val).trim_end().to_string())
                    };
                    (code, dec(lab).trim_end().to_string())
                })
                .collect();
            SourceColumn {
                name: v.name.clone(),
                label: v.label.as_deref().map(dec).filter(|l| !l.is_empty()),
                data: match b {
                    Builder::Num(x) => ColumnData::Num(x),
                    Builder::Text(x) => ColumnData::Text(x),
                },
                value_labels,
                user_missing: user_missing(v, big, &dec),
                tagged_missing: Vec::new(),
            }
        })
        .collect()
}

enum Builder {
    Num(Vec<f64>),
    Text(Vec<Option<String>>),
}

/// 8-byte units of the case data, decompressing bytecode when `compressed`.
struct UnitReader<'a> {
    b: &'a [u8],
    pos: usize,
    commands: [u8; 8],
    next_command: usize,
    compressed: bool,
    bias: f64,
    big_endian: bool,
}

impl UnitReader<'_> {
    fn raw(&mut self) -> Option<[u8; 8]> {
        let s: [u8; 8] = self.b.get(self.pos..self.pos + 8)?.try_into().ok()?;
        self.pos += 8;
        Some(s)
    }

    fn next(&mut self) -> Option<[u8; 8]> {
        if !self.compressed {
            return self.raw();
        }
        loop {
            if self.next_command >= 8 {
                self.commands = self.raw()?;
                self.next_command = 0;
            }
            let c = self.commands[self.next_command];
            self.next_command += 1;
            let num = |x: f64, big: bool| {
                if big {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                }
            };
            match c {
                0 => continue,
                252 => {
                    self.pos = self.b.len();
                    return None;
                }
                253 => return self.raw(),
                254 => return Some(*b"        "),
                255 => return Some(num(SYSMIS, self.big_endian)),
                code => return Some(num(f64::from(code) - self.bias, self.big_endian)),
            }
        }
    }
}

/// The encoding of the file's text: the character encoding record (subtype 20), else the
/// code page of the machine integer info record, else Windows-1252 (SPSS's default before
/// Unicode mode).
fn pick_encoding(name: Option<&str>, code: Option<i32>) -> &'static Encoding {
    if let Some(e) = name.and_then(|n| Encoding::for_label(n.as_bytes())) {
        return e;
    }
    match code {
        Some(65001) => encoding_rs::UTF_8,
        Some(c @ 1250..=1258) => Encoding::for_label(format!("windows-{c}").as_bytes())
            .unwrap_or(encoding_rs::WINDOWS_1252),
        Some(28591) => encoding_rs::WINDOWS_1252,
        _ => encoding_rs::WINDOWS_1252,
    }
}

fn decode(e: &'static Encoding, b: &[u8]) -> String {
    if e == encoding_rs::UTF_8 {
        String::from_utf8_lossy(b).into_owned()
    } else {
        e.decode_without_bom_handling(b).0.into_owned()
    }
}

/// Very long strings (subtype 14, `NAME=00300` entries separated by NUL and tab): a
/// variable wider than 255 bytes is stored as ceil(width / 252) string variables, each of
/// width 255 but the last (the rest of the text); they become one column.
fn merge_very_long_strings(vars: &mut Vec<Var>, text: &str) {
    for entry in text.split(['\t', '\0']) {
        let Some((name, width)) = entry.split_once('=') else {
            continue;
        };
        let Ok(width) = width.trim().parse::<usize>() else {
            continue;
        };
        let Some(first) = vars
            .iter()
            .position(|v| v.name.eq_ignore_ascii_case(name.trim()))
        else {
            continue;
        };
        let n_seg = width.div_ceil(252).max(1);
        if first + n_seg > vars.len() {
            continue;
        }
        let mut segments = Vec::with_capacity(n_seg);
        for (k, v) in vars.iter().skip(first).take(n_seg).enumerate() {
            let (u0, n, _) = v.segments.first().copied().unwrap_or((0, 0, 0));
            let used = if k + 1 < n_seg {
                255
            } else {
                width.saturating_sub(255 * (n_seg - 1))
            };
            segments.push((u0, n, used));
        }
        vars.drain(first + 1..first + n_seg);
        if let Some(v) = vars.get_mut(first) {
            v.segments = segments;
            v.width = i32::try_from(width).unwrap_or(i32::MAX);
        }
    }
}

/// The missing-value declaration of a variable (1-3 codes; -2 a range; -3 a range and a
/// code).
fn user_missing(v: &Var, big: bool, dec: &dyn Fn(&[u8]) -> String) -> UserMissing {
    let mut m = UserMissing::default();
    if v.width != 0 {
        m.codes = v
            .missing
            .iter()
            .map(|u| Code::Text(dec(u).trim_end().to_string()))
            .collect();
        return m;
    }
    let vals: Vec<f64> = v.missing.iter().map(|u| f64_of(*u, big)).collect();
    match v.missing_n {
        -2 | -3 => {
            if let (Some(&lo), Some(&hi)) = (vals.first(), vals.get(1)) {
                m.range = Some((lo, hi));
            }
            m.codes = vals.iter().skip(2).map(|&x| Code::Num(x)).collect();
        }
        _ => m.codes = vals.into_iter().map(Code::Num).collect(),
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal little-endian system file writer for the tests: numeric and short string
    /// variables, optional bytecode compression.
    fn build(
        vars: &[(&str, i32, i32)],
        rows: &[Vec<Result<f64, &str>>],
        compressed: bool,
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"$FL2");
        b.extend_from_slice(&[b' '; 60]);
        let units: i32 = vars
            .iter()
            .map(|v| if v.1 == 0 { 1 } else { (v.1 + 7) / 8 })
            .sum();
        for x in [2, units, i32::from(compressed), 0, rows.len() as i32] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.extend_from_slice(&100f64.to_le_bytes());
        b.extend_from_slice(&[b' '; 84]);
        for &(name, width, missing) in vars {
            for seg in 0..(if width == 0 { 1 } else { (width + 7) / 8 }) {
                b.extend_from_slice(&2i32.to_le_bytes());
                b.extend_from_slice(&(if seg == 0 { width } else { -1 }).to_le_bytes());
                b.extend_from_slice(&0i32.to_le_bytes());
                let nm: i32 = if seg == 0 && missing != 0 { 1 } else { 0 };
                b.extend_from_slice(&nm.to_le_bytes());
                let fmt = if width == 0 {
                    5 << 16 | 8 << 8
                } else {
                    1 << 16 | width << 8
                };
                b.extend_from_slice(&fmt.to_le_bytes());
                b.extend_from_slice(&fmt.to_le_bytes());
                let mut n = name.as_bytes().to_vec();
                n.resize(8, b' ');
                b.extend_from_slice(&n);
                if nm == 1 {
                    b.extend_from_slice(&f64::from(missing).to_le_bytes());
                }
            }
        }
        b.extend_from_slice(&999i32.to_le_bytes());
        b.extend_from_slice(&0i32.to_le_bytes());
        let mut data_units: Vec<[u8; 8]> = Vec::new();
        for r in rows {
            for (v, cell) in vars.iter().zip(r) {
                match cell {
                    Ok(x) => data_units.push(x.to_le_bytes()),
                    Err(s) => {
                        let mut t = s.as_bytes().to_vec();
                        t.resize(((v.1 + 7) / 8 * 8) as usize, b' ');
                        for ch in t.chunks(8) {
                            data_units.push(ch.try_into().unwrap());
                        }
                    }
                }
            }
        }
        if !compressed {
            for u in data_units {
                b.extend_from_slice(&u);
            }
            return b;
        }
        for chunk in data_units.chunks(8) {
            let mut cmds = [0u8; 8];
            let mut raw = Vec::new();
            for (k, u) in chunk.iter().enumerate() {
                let x = f64::from_le_bytes(*u);
                cmds[k] = if u == b"        " {
                    254
                } else if x == SYSMIS {
                    255
                } else if x.fract() == 0.0 && (-99.0..=151.0).contains(&x) {
                    (x + 100.0) as u8
                } else {
                    raw.push(*u);
                    253
                };
            }
            b.extend_from_slice(&cmds);
            for u in raw {
                b.extend_from_slice(&u);
            }
        }
        b
    }

    #[test]
    fn reads_numeric_string_missing_and_compression() {
        let vars = [("ID", 8, 0), ("X", 0, 99), ("Y", 0, 0)];
        let rows = vec![
            vec![Err("P1"), Ok(3.0), Ok(2.5)],
            vec![Err("P2"), Ok(99.0), Ok(SYSMIS)],
            vec![Err("P3"), Ok(-5.0), Ok(1234.0)],
        ];
        for compressed in [false, true] {
            let bytes = build(&vars, &rows, compressed);
            let t = parse_sav(&bytes, Path::new("t.sav")).unwrap();
            assert_eq!(t.n_rows, 3);
            assert_eq!(t.columns.len(), 3);
            assert_eq!(
                t.columns[0].data,
                ColumnData::Text(vec![
                    Some("P1".into()),
                    Some("P2".into()),
                    Some("P3".into())
                ])
            );
            let ColumnData::Num(x) = &t.columns[1].data else {
                panic!("X is numeric")
            };
            assert_eq!(x, &vec![3.0, 99.0, -5.0]);
            assert!(t.columns[1].user_missing.contains_num(99.0));
            let ColumnData::Num(y) = &t.columns[2].data else {
                panic!("Y is numeric")
            };
            assert_eq!(y[0], 2.5);
            assert!(y[1].is_nan());
            assert_eq!(y[2], 1234.0);
        }
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let bytes = build(&[("X", 0, 0)], &[vec![Ok(1.0)], vec![Ok(2.0)]], true);
        for cut in [0, 3, 50, 100, 180, 200, bytes.len() - 3] {
            let r = parse_sav(&bytes[..cut], Path::new("t.sav"));
            if let Ok(t) = &r {
                assert!(t.n_rows <= 2);
            }
        }
        assert!(matches!(
            parse_sav(b"PK\x03\x04 not spss", Path::new("t.sav")),
            Err(ImportError::Malformed { .. })
        ));
    }

    #[test]
    fn dates_from_the_spss_epoch() {
        // 1970-01-01 is 12,219,379,200 seconds after 1582-10-14; 2013-07-19 15,905 days later
        assert_eq!(
            spss_date(12_219_379_200.0).unwrap().to_string(),
            "1970-01-01"
        );
        let d = spss_date(12_219_379_200.0 + 15_905.0 * 86_400.0).unwrap();
        assert_eq!(d.to_string(), "2013-07-19");
        assert!(is_date_format(20 << 16 | 11 << 8));
        assert!(!is_date_format(5 << 16 | 8 << 8));
    }
}
