//! Raw tables: CSV or Parquet files read into compact, column-oriented text.
//!
//! Parquet is read through polars. CSV (RFC 4180: comma separator, `"` quotes with `""` as an
//! escaped quote, LF or CRLF line ends; a blank line after the header is a row of empty cells,
//! as in polars) is parsed here in one pass straight
//! into the text columns: the values are kept as text anyway, and going through polars' string
//! arrays cost three times the memory and most of the time of validating a 100,000-participant
//! export. `tests/foundation.rs` checks that it gives the same cells as polars
//! ([`read_csv_via_polars`]).
//!
//! Every cell is kept as the text it had in the file (Parquet columns are cast to text), so that
//! validation sees the raw value and can quote it back in a message. A column is stored as one
//! UTF-8 buffer plus one `u32` end offset per row (about 4 bytes + the text per cell), which keeps
//! 100,000 participants x 3 waves x ~130 item columns in a few hundred megabytes.
//!
//! Row numbers in messages are 1-based with the header as row 1: data row `i` (0-based) is
//! row `i + 2`, see [`file_row`].

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

/// The row number a user sees in a spreadsheet for 0-based data row `i` (header = row 1).
pub fn file_row(i: usize) -> usize {
    i + 2
}

/// Errors from reading or writing a table file.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{}: cannot open: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: unsupported file type (expected a .csv or .parquet file)", path.display())]
    UnsupportedExtension { path: PathBuf },
    /// The file is not well-formed CSV/Parquet; `row` is the 1-based file row (header = 1)
    /// where the problem was found, when it could be located.
    #[error("{}{}: {message}", path.display(), row.map(|r| format!(", row {r}")).unwrap_or_default())]
    Malformed {
        path: PathBuf,
        row: Option<usize>,
        message: String,
    },
    #[error("{}: column `{column}` holds more than 4 GiB of text", path.display())]
    TooLarge { path: PathBuf, column: String },
    #[error("{}: columns differ in length: `{column}` has {len} values, expected {expected}", path.display())]
    RaggedColumns {
        path: PathBuf,
        column: String,
        len: usize,
        expected: usize,
    },
    #[error("{}: cannot write: {message}", path.display())]
    Write { path: PathBuf, message: String },
}

/// One column of text cells: the trimmed cells concatenated, with the end offset of each cell.
/// An empty range is an empty or null cell.
#[derive(Debug, Clone, Default)]
struct TextColumn {
    text: String,
    ends: Vec<u32>,
}

impl TextColumn {
    fn with_capacity(rows: usize) -> Self {
        TextColumn {
            text: String::new(),
            ends: Vec::with_capacity(rows),
        }
    }

    /// Appends a cell (trimmed; `None` and whitespace-only become empty). Returns false when
    /// the column outgrows `u32` offsets.
    fn push(&mut self, cell: Option<&str>) -> bool {
        if let Some(c) = cell {
            // fast path: no (possibly Unicode) whitespace at either end
            let b = c.as_bytes();
            let plain = |x: u8| x.is_ascii() && !x.is_ascii_whitespace();
            match (b.first(), b.last()) {
                (Some(&f), _) if b.len() == 1 && plain(f) => self.text.push(char::from(f)),
                (Some(&f), Some(&l)) if plain(f) && plain(l) => self.text.push_str(c),
                _ => self.text.push_str(c.trim()),
            }
        }
        match u32::try_from(self.text.len()) {
            Ok(end) => {
                self.ends.push(end);
                true
            }
            Err(_) => false,
        }
    }

    /// Appends the cells of another column. Returns false when the column outgrows `u32`
    /// offsets.
    fn append(&mut self, other: TextColumn) -> bool {
        let Ok(base) = u32::try_from(self.text.len()) else {
            return false;
        };
        if u32::try_from(self.text.len() + other.text.len()).is_err() {
            return false;
        }
        self.text.push_str(&other.text);
        self.ends.extend(other.ends.iter().map(|e| base + e));
        true
    }

    fn get(&self, row: usize) -> Option<&str> {
        let end = *self.ends.get(row)? as usize;
        let start = match row.checked_sub(1) {
            Some(prev) => *self.ends.get(prev)? as usize,
            None => 0,
        };
        if start >= end {
            return None;
        }
        self.text.get(start..end)
    }
}

/// The SHA-256 and size of a file's bytes, taken from the bytes that were parsed (so a
/// manifest describes exactly what the analysis read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Lower-case hex SHA-256.
    pub sha256: String,
    pub bytes: u64,
}

impl FileDigest {
    pub fn of(bytes: &[u8]) -> FileDigest {
        use sha2::{Digest, Sha256};
        FileDigest {
            sha256: Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            bytes: bytes.len() as u64,
        }
    }
}

/// Reads a whole file and its digest in one pass over the bytes.
pub fn read_file_digest(path: &Path) -> std::io::Result<(Vec<u8>, FileDigest)> {
    let bytes = std::fs::read(path)?;
    let digest = FileDigest::of(&bytes);
    Ok((bytes, digest))
}

/// A table as read from a file: named columns of raw text cells.
#[derive(Debug, Clone)]
pub struct RawTable {
    name: String,
    source: PathBuf,
    columns: Vec<String>,
    data: Vec<TextColumn>,
    n_rows: usize,
    /// Digest of the file the table was parsed from (`None` for tables built in memory).
    digest: Option<FileDigest>,
}

impl RawTable {
    /// Builds a table from named columns of cells (e.g. for tests or generated data).
    /// Cells are trimmed; empty cells become `None`. All columns must have the same length.
    pub fn from_columns<S: AsRef<str>>(
        name: &str,
        source: &Path,
        columns: Vec<(String, Vec<Option<S>>)>,
    ) -> Result<RawTable, TableError> {
        let n_rows = columns.first().map(|(_, v)| v.len()).unwrap_or(0);
        let mut names = Vec::with_capacity(columns.len());
        let mut data = Vec::with_capacity(columns.len());
        for (col_name, cells) in columns {
            if cells.len() != n_rows {
                return Err(TableError::RaggedColumns {
                    path: source.to_path_buf(),
                    column: col_name,
                    len: cells.len(),
                    expected: n_rows,
                });
            }
            let mut col = TextColumn::with_capacity(n_rows);
            for c in &cells {
                if !col.push(c.as_ref().map(|s| s.as_ref())) {
                    return Err(TableError::TooLarge {
                        path: source.to_path_buf(),
                        column: col_name,
                    });
                }
            }
            names.push(col_name);
            data.push(col);
        }
        Ok(RawTable {
            name: name.to_string(),
            source: source.to_path_buf(),
            columns: names,
            data,
            n_rows,
            digest: None,
        })
    }

    /// Table name, e.g. `participants` (the file stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Digest of the file the table was read from ([`read_table_file`]).
    pub fn digest(&self) -> Option<&FileDigest> {
        self.digest.as_ref()
    }

    /// The file the table came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Number of data rows (the header is not counted).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Column names in file order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Index of the column with this exact name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The trimmed text of a cell; `None` for an empty or null cell or an index out of range.
    pub fn cell(&self, row: usize, col: usize) -> Option<&str> {
        self.data.get(col)?.get(row)
    }

    /// All cells of one column, in row order (empty when `col` is out of range).
    pub fn column_cells(&self, col: usize) -> impl Iterator<Item = Option<&str>> + '_ {
        let (text, ends) = self
            .data
            .get(col)
            .map_or(("", &[][..]), |c| (c.text.as_str(), c.ends.as_slice()));
        let mut start = 0usize;
        ends.iter().take(self.n_rows).map(move |&end| {
            let (s, e) = (start, end as usize);
            start = e;
            if s >= e {
                None
            } else {
                text.get(s..e)
            }
        })
    }
}

/// Reads a `.csv` or `.parquet` file (by extension) with every column as text. The table is
/// named after the file stem.
pub fn read_table_file(path: &Path) -> Result<RawTable, TableError> {
    read_table(path, false)
}

/// As [`read_table_file`], with the SHA-256 of the bytes it parsed ([`RawTable::digest`]) for
/// a run's manifest.
pub fn read_table_file_hashed(path: &Path) -> Result<RawTable, TableError> {
    read_table(path, true)
}

fn read_table(path: &Path, hashed: bool) -> Result<RawTable, TableError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    let name = table_name(path);
    if !matches!(ext.as_deref(), Some("csv" | "parquet")) {
        return Err(TableError::UnsupportedExtension {
            path: path.to_path_buf(),
        });
    }
    let bytes = read_file_bytes(path)?;
    let digest = hashed.then(|| FileDigest::of(&bytes));
    let mut table = if ext.as_deref() == Some("csv") {
        csv_from_bytes(&name, path, &bytes)?
    } else {
        frame_to_table(&name, path, parquet_from_bytes(path, bytes)?)?
    };
    table.digest = digest;
    Ok(table)
}

/// `dir/base.csv` or `dir/base.parquet`, whichever exists (CSV first).
pub fn find_table(dir: &Path, base: &str) -> Option<PathBuf> {
    ["csv", "parquet"]
        .iter()
        .map(|ext| dir.join(format!("{base}.{ext}")))
        .find(|p| p.is_file())
}

/// Parses the bytes of a CSV file into a [`RawTable`] (see the module documentation for the
/// dialect); the text must be UTF-8.
fn csv_from_bytes(name: &str, path: &Path, bytes: &[u8]) -> Result<RawTable, TableError> {
    csv_from_str(name, path, csv_text(path, bytes)?)
}

/// The text of a CSV file's bytes: UTF-8 required (the error names the row of the first
/// invalid byte).
pub fn csv_text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, TableError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let row = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
        TableError::Malformed {
            path: path.to_path_buf(),
            row: Some(row),
            message: format!(
                "not UTF-8 text (invalid byte at offset {at}); save the file as UTF-8"
            ),
        }
    })
}

/// Parses CSV text (the dialect of the module documentation; a leading byte-order mark is
/// dropped) into one sink per chunk of the body (`make(chunk text, header names)`);
/// `source` names the file in messages. The structure errors (an empty file, a duplicated
/// header name, a ragged row, an unclosed quote) are those of [`csv_from_str`].
pub fn csv_chunks<'a, S, M>(
    source: &Path,
    text: &'a str,
    make: M,
) -> Result<CsvChunks<'a, S>, TableError>
where
    S: RecordSink<'a>,
    M: Fn(&'a str, &[String]) -> S + Sync,
{
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_not_empty(source, text)?;
    parse_csv_chunks(text, make).map_err(|e| csv_error(source, e))
}

fn check_not_empty(source: &Path, text: &str) -> Result<(), TableError> {
    if text.bytes().all(|b| b.is_ascii_whitespace()) {
        return Err(TableError::Malformed {
            path: source.to_path_buf(),
            row: None,
            message: "empty file (expected a header row)".into(),
        });
    }
    Ok(())
}

fn csv_error(source: &Path, e: CsvError) -> TableError {
    match e {
        CsvError::Malformed { row, message } => TableError::Malformed {
            path: source.to_path_buf(),
            row: Some(row),
            message,
        },
        CsvError::TooLarge { column } => TableError::TooLarge {
            path: source.to_path_buf(),
            column,
        },
    }
}

/// Parses CSV text (the dialect of the module documentation; a leading byte-order mark is
/// dropped) into a [`RawTable`] named `name`; `source` names the file in messages. The one CSV
/// parser of herstel: exports, `herstel fit --data` and the tests read through it.
pub fn csv_from_str(name: &str, source: &Path, text: &str) -> Result<RawTable, TableError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_not_empty(source, text)?;
    let (columns, data, n_rows) = parse_csv(text).map_err(|e| csv_error(source, e))?;
    Ok(RawTable {
        name: name.to_string(),
        source: source.to_path_buf(),
        columns,
        data,
        n_rows,
        digest: None,
    })
}

enum CsvError {
    /// 1-based record number (header = 1) and what is wrong.
    Malformed {
        row: usize,
        message: String,
    },
    TooLarge {
        column: String,
    },
}

/// One field as the tokenizer found it: a slice of the text (an unquoted field, or a quoted
/// one without `""` escapes that ends at its closing quote), or the field unescaped into the
/// tokenizer's scratch buffer (valid until the next field).
pub enum Field<'a, 's> {
    Slice(&'a str),
    Unescaped(&'s str),
}

impl Field<'_, '_> {
    /// The field's text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match self {
            Field::Slice(s) => s,
            Field::Unescaped(s) => s,
        }
    }
}

/// One record of the export dialect (`,` and `"`), see [`next_record_in`].
#[inline]
fn next_record<'a>(
    text: &'a str,
    pos: &mut usize,
    scratch: &mut String,
    field: impl FnMut(usize, Field<'a, '_>) -> bool,
) -> Result<usize, CsvFail> {
    next_record_in(text, pos, scratch, field, (b',', b'"'))
}

/// One record from `*pos` (RFC 4180 with separator `sep` and quote `quote`; a quote opens a
/// field only as its first character, a doubled quote inside is one quote, anything between
/// the closing quote and the separator is kept), each field passed to `field`; `*pos` ends
/// past the record's line feed; returns the number of fields. Err: the record's quoted field
/// is not closed before the end of the text. The one CSV tokenizer of herstel: the exports'
/// reader, the typed reader of model data ([`parse_csv_chunks`]) and `herstel import`
/// ([`csv_records`]) all split records with it.
#[inline]
fn next_record_in<'a>(
    text: &'a str,
    pos: &mut usize,
    scratch: &mut String,
    mut field: impl FnMut(usize, Field<'a, '_>) -> bool,
    (sep, quote): (u8, u8),
) -> Result<usize, CsvFail> {
    let b = text.as_bytes();
    let n = b.len();
    let mut k = 0usize;
    loop {
        let value: Field<'a, '_> = if *pos < n && b[*pos] == quote {
            *pos += 1;
            let open = *pos;
            while *pos < n && b[*pos] != quote {
                *pos += 1;
            }
            if *pos >= n {
                return Err(CsvFail::Unterminated);
            }
            let after = *pos + 1;
            if after >= n || b[after] == sep || b[after] == b'\n' {
                // closed and followed by the separator: the text between the quotes
                *pos = after;
                Field::Slice(&text[open..after - 1])
            } else {
                scratch.clear();
                let mut seg = open;
                loop {
                    while *pos < n && b[*pos] != quote {
                        *pos += 1;
                    }
                    if *pos >= n {
                        return Err(CsvFail::Unterminated);
                    }
                    if *pos + 1 < n && b[*pos + 1] == quote {
                        scratch.push_str(&text[seg..=*pos]);
                        *pos += 2;
                        seg = *pos;
                    } else {
                        scratch.push_str(&text[seg..*pos]);
                        *pos += 1;
                        break;
                    }
                }
                // anything between the closing quote and the separator is kept as is
                let rest = *pos;
                while *pos < n && b[*pos] != sep && b[*pos] != b'\n' {
                    *pos += 1;
                }
                scratch.push_str(&text[rest..*pos]);
                Field::Unescaped(scratch)
            }
        } else {
            let start = *pos;
            while *pos < n && b[*pos] != sep && b[*pos] != b'\n' {
                *pos += 1;
            }
            Field::Slice(&text[start..*pos])
        };
        if !field(k, value) {
            return Err(CsvFail::TooLarge(k));
        }
        k += 1;
        let comma = *pos < n && b[*pos] == sep;
        *pos += 1; // past the separator or line feed (or beyond the end)
        if !comma {
            return Ok(k);
        }
        if *pos >= n {
            // a trailing comma at the very end: one more, empty field
            if !field(k, Field::Slice("")) {
                return Err(CsvFail::TooLarge(k));
            }
            return Ok(k + 1);
        }
    }
}

enum CsvFail {
    Unterminated,
    /// A record with this many fields (not the header's number).
    Ragged(usize),
    /// Column index whose text outgrew `u32` offsets.
    TooLarge(usize),
}

/// If `*pos` starts a blank line (only carriage returns before a line feed or the end), moves
/// past it and returns true.
/// Splits `text` into records of text fields with separator `sep` and quote `quote` (the
/// tokenizer of the exports, [`next_record_in`]; `herstel import` reads other dialects
/// through it), at most `limit` records. Returns the records and the 1-based line each starts
/// on, or the line of a quoted field that is never closed.
pub fn csv_records(
    text: &str,
    (sep, quote): (u8, u8),
    limit: Option<usize>,
) -> Result<(Vec<Vec<String>>, Vec<usize>), usize> {
    let b = text.as_bytes();
    let mut pos = 0usize;
    let mut line = 1usize;
    let mut records = Vec::new();
    let mut starts = Vec::new();
    let mut scratch = String::new();
    while pos < b.len() && limit.is_none_or(|l| records.len() < l) {
        let start = pos;
        let mut rec: Vec<String> = Vec::new();
        let r = next_record_in(
            text,
            &mut pos,
            &mut scratch,
            |_, v| {
                rec.push(v.as_str().to_string());
                true
            },
            (sep, quote),
        );
        if r.is_err() {
            return Err(line);
        }
        records.push(rec);
        starts.push(line);
        line += b[start..pos.min(b.len())]
            .iter()
            .filter(|&&c| c == b'\n')
            .count();
    }
    Ok((records, starts))
}

fn skip_blank_line(b: &[u8], pos: &mut usize) -> bool {
    let mut q = *pos;
    while q < b.len() && b[q] == b'\r' {
        q += 1;
    }
    if q >= b.len() || b[q] == b'\n' {
        *pos = q + 1;
        true
    } else {
        false
    }
}

/// What the chunk parser fills, one data record at a time: field `k` of the current record
/// (a blank line is a record of empty fields). Returns false when column `k` outgrew its
/// storage. [`TextColumns`] keeps the text of every cell; the model data's typed reader
/// (`frame::typed_csv`) types the cells as they come.
pub trait RecordSink<'a>: Send {
    fn field(&mut self, k: usize, value: Field<'a, '_>) -> bool;
}

/// The text columns of one chunk: [`RawTable`]'s storage.
struct TextColumns(Vec<TextColumn>);

impl<'a> RecordSink<'a> for TextColumns {
    #[inline]
    fn field(&mut self, k: usize, value: Field<'a, '_>) -> bool {
        self.0.get_mut(k).is_none_or(|col| {
            let v = value.as_str();
            col.push((!v.is_empty()).then_some(v))
        })
    }
}

/// One parsed chunk of a CSV body: its text, what the sink made of it and its number of data
/// rows.
pub struct Chunk<'a, S> {
    pub text: &'a str,
    pub sink: S,
    pub n_rows: usize,
}

/// Parses data records into `sink`; a blank line is a row of empty cells (as polars reads it,
/// so that row numbers stay those of the file). Err: (1-based record number within the chunk,
/// failure).
fn parse_body<'a, S: RecordSink<'a>>(
    text: &'a str,
    n_cols: usize,
    mut sink: S,
) -> Result<Chunk<'a, S>, (usize, CsvFail)> {
    let b = text.as_bytes();
    let mut scratch = String::new();
    let mut pos = 0usize;
    let mut n_rows = 0usize;
    while pos < b.len() {
        n_rows += 1;
        if skip_blank_line(b, &mut pos) {
            for k in 0..n_cols {
                if !sink.field(k, Field::Slice("")) {
                    return Err((n_rows, CsvFail::TooLarge(k)));
                }
            }
            continue;
        }
        let k = next_record(text, &mut pos, &mut scratch, |k, v| sink.field(k, v))
            .map_err(|f| (n_rows, f))?;
        if k != n_cols {
            return Err((n_rows, CsvFail::Ragged(k)));
        }
    }
    Ok(Chunk { text, sink, n_rows })
}

/// Splits a CSV body into up to `parts` chunks at line feeds outside quoted fields (judged by
/// the parity of the quotes before a cut; see the comment in the loop).
fn split_body(body: &str, parts: usize) -> Vec<&str> {
    const MIN_CHUNK: usize = 4 << 20;
    if parts < 2 || body.len() < 2 * MIN_CHUNK {
        return vec![body];
    }
    let b = body.as_bytes();
    let mut out = Vec::with_capacity(parts);
    let mut start = 0usize;
    for j in 1..parts {
        let target = (body.len() * j / parts).max(start);
        // A line feed after an even number of quotes since the last cut is (in a well-formed
        // file) outside quoted fields; `parse_csv_chunks` checks that every chunk parses to
        // its end and parses sequentially otherwise, so a wrong guess costs time, never cells.
        let quotes: usize = {
            use rayon::prelude::*;
            b[start..target]
                .par_chunks(1 << 20)
                .map(|c| c.iter().filter(|&&c| c == b'"').count())
                .sum()
        };
        let mut inside = quotes % 2 == 1;
        let mut cut = None;
        for (off, &c) in b[target..].iter().enumerate() {
            if c == b'"' {
                inside = !inside;
            } else if c == b'\n' && !inside {
                cut = Some(target + off + 1);
                break;
            }
        }
        match cut {
            Some(cut) if cut < body.len() => {
                out.push(&body[start..cut]);
                start = cut;
            }
            _ => break,
        }
    }
    out.push(&body[start..]);
    out
}

/// A CSV file's header and its body parsed in chunks (see [`parse_csv_chunks`]).
pub struct CsvChunks<'a, S> {
    pub names: Vec<String>,
    pub chunks: Vec<Chunk<'a, S>>,
}

impl<S> CsvChunks<'_, S> {
    /// Data rows in all chunks.
    pub fn n_rows(&self) -> usize {
        self.chunks.iter().map(|c| c.n_rows).sum()
    }
}

/// The number of records a chunk of text holds at most (its line feeds plus one): the
/// capacity a sink reserves.
pub fn record_capacity(text: &str) -> usize {
    text.bytes().filter(|&c| c == b'\n').count() + 1
}

/// CSV parser over UTF-8 text: header names (trimmed) and the body parsed into one sink per
/// chunk (`make(chunk text, header names)`). Field separators, quotes and line feeds are
/// ASCII, so every slice taken falls on a character boundary. A large body is parsed in
/// parallel chunks (one per thread); if any chunk fails, one sequential pass gives the cells
/// and the first error with its row exactly.
fn parse_csv_chunks<'a, S, M>(text: &'a str, make: M) -> Result<CsvChunks<'a, S>, CsvError>
where
    S: RecordSink<'a>,
    M: Fn(&'a str, &[String]) -> S + Sync,
{
    let b = text.as_bytes();
    let mut pos = 0usize;
    while pos < b.len() && skip_blank_line(b, &mut pos) {}
    let mut names: Vec<String> = Vec::new();
    let mut scratch = String::new();
    next_record(text, &mut pos, &mut scratch, |_, v| {
        names.push(v.as_str().trim().to_string());
        true
    })
    .map_err(|_| CsvError::Malformed {
        row: 1,
        message: "unterminated quoted field at the end of the file".into(),
    })?;
    if let Some(dup) = names
        .iter()
        .enumerate()
        .find(|(i, a)| names[..*i].contains(a))
        .map(|(_, a)| a.clone())
    {
        return Err(CsvError::Malformed {
            row: 1,
            message: format!("the header names column `{dup}` more than once"),
        });
    }
    let body = text.get(pos.min(text.len())..).unwrap_or("");
    let parts = split_body(body, rayon::current_num_threads());
    let n_cols = names.len();
    let parse = |c: &'a str| parse_body(c, n_cols, make(c, &names));
    let mut parsed: Vec<Result<Chunk<'a, S>, (usize, CsvFail)>> = if parts.len() > 1 {
        use rayon::prelude::*;
        parts.par_iter().map(|&c| parse(c)).collect()
    } else {
        parts.iter().map(|&c| parse(c)).collect()
    };
    if parts.len() > 1 && parsed.iter().any(|p| p.is_err()) {
        parsed = vec![parse(body)];
    }
    let mut rows_before = 0usize;
    let mut chunks = Vec::with_capacity(parsed.len());
    for part in parsed {
        match part {
            Ok(chunk) => {
                rows_before += chunk.n_rows;
                chunks.push(chunk);
            }
            Err((local, fail)) => {
                let row = 1 + rows_before + local;
                return Err(match fail {
                    CsvFail::TooLarge(k) => CsvError::TooLarge {
                        column: names.get(k).cloned().unwrap_or_default(),
                    },
                    CsvFail::Ragged(fields) => CsvError::Malformed {
                        row,
                        message: format!("row has {fields} fields, the header has {n_cols}"),
                    },
                    CsvFail::Unterminated => CsvError::Malformed {
                        row,
                        message: "unterminated quoted field at the end of the file".into(),
                    },
                });
            }
        }
    }
    Ok(CsvChunks { names, chunks })
}

/// Parses one chunk again into a new sink (same text, so the same records as the first
/// time): for a sink that decides it needs another shape after seeing the whole file.
pub fn reparse_chunk<'a, S: RecordSink<'a>>(text: &'a str, n_cols: usize, sink: S) -> Option<S> {
    parse_body(text, n_cols, sink).ok().map(|c| c.sink)
}

/// CSV parser over UTF-8 text into [`TextColumn`]s: header names, columns, number of rows.
fn parse_csv(text: &str) -> Result<(Vec<String>, Vec<TextColumn>, usize), CsvError> {
    let parsed = parse_csv_chunks(text, |chunk, names: &[String]| {
        let n_cols = names.len();
        let capacity = record_capacity(chunk);
        // Twice a column's share of the chunk's bytes reserved (address space: pages are
        // touched only when written), so that a column's text is rarely copied as it grows.
        let bytes = (2 * chunk.len() / n_cols.max(1)).min(chunk.len()) + 16;
        TextColumns(
            (0..n_cols)
                .map(|_| TextColumn {
                    text: String::with_capacity(bytes),
                    ends: Vec::with_capacity(capacity),
                })
                .collect(),
        )
    })?;
    let n_rows = parsed.n_rows();
    let names = parsed.names;
    let n_cols = names.len();
    let mut data: Vec<TextColumn> = Vec::new();
    for (j, chunk) in parsed.chunks.into_iter().enumerate() {
        if j == 0 {
            data = chunk.sink.0;
        } else {
            for (k, (col, more)) in data.iter_mut().zip(chunk.sink.0).enumerate() {
                if !col.append(more) {
                    return Err(CsvError::TooLarge {
                        column: names.get(k).cloned().unwrap_or_default(),
                    });
                }
            }
        }
    }
    if data.is_empty() {
        data = (0..n_cols).map(|_| TextColumn::default()).collect();
    }
    Ok((names, data, n_rows))
}

/// Reads a CSV file through polars (every column as text) instead of the native reader: the
/// reference the native reader is tested against (`tests/foundation.rs`).
pub fn read_csv_via_polars(path: &Path) -> Result<RawTable, TableError> {
    let name = table_name(path);
    frame_to_table(&name, path, read_csv_frame(path)?)
}

fn read_csv_frame(path: &Path) -> Result<DataFrame, TableError> {
    let bytes = read_file_bytes(path)?;
    let malformed = |row: Option<usize>, message: String| TableError::Malformed {
        path: path.to_path_buf(),
        row,
        message,
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(malformed(None, "empty file (expected a header row)".into()));
    }
    // polars fills short rows with nulls and rejects long ones without saying where; a
    // structural scan first locates such rows so that they are reported, not hidden.
    if let Some((row, message)) = first_structure_problem(&bytes) {
        return Err(malformed(Some(row), message));
    }
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_raise_if_empty(true)
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| malformed(None, e.to_string()))
}

/// Returns (1-based record number with the header as 1, message) for the first malformed
/// record.
fn first_structure_problem(bytes: &[u8]) -> Option<(usize, String)> {
    let mut header_fields: Option<usize> = None;
    let mut record = 0usize; // records seen, header included
    let mut fields = 1usize;
    let mut in_quotes = false;
    let mut record_empty = true;
    let mut field_start = true;
    let mut i = 0usize;
    let n = bytes.len();
    let mut end_record = |fields: usize, empty: bool| -> Option<(usize, String)> {
        if empty {
            return None; // blank line
        }
        record += 1;
        match header_fields {
            None => {
                header_fields = Some(fields);
                None
            }
            Some(h) if h != fields => Some((
                record,
                format!("row has {fields} fields, the header has {h}"),
            )),
            _ => None,
        }
    };
    while i < n {
        let b = bytes[i];
        if in_quotes {
            if b == b'"' {
                if i + 1 < n && bytes[i + 1] == b'"' {
                    i += 1;
                } else {
                    in_quotes = false;
                }
            }
        } else {
            match b {
                b'"' if field_start => {
                    in_quotes = true;
                    record_empty = false;
                    field_start = false;
                }
                b',' => {
                    fields += 1;
                    record_empty = false;
                    field_start = true;
                }
                b'\n' => {
                    if let Some(p) = end_record(fields, record_empty) {
                        return Some(p);
                    }
                    fields = 1;
                    record_empty = true;
                    field_start = true;
                }
                b'\r' => {}
                _ => {
                    record_empty = false;
                    field_start = false;
                }
            }
        }
        i += 1;
    }
    if in_quotes {
        return Some((
            record + 1,
            "unterminated quoted field at the end of the file".into(),
        ));
    }
    end_record(fields, record_empty)
}

fn parquet_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<DataFrame, TableError> {
    ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .map_err(polars_error(path))
}

/// A data file's bytes: memory-mapped where the system allows it, read into memory otherwise
/// (an empty file, a pipe, a file system without mappings).
///
/// The mapping hands the parser the page cache's own pages: reading 1,000,000 rows (38 MB)
/// into a buffer faulted in 9,400 fresh pages of 4 KB, zeroed and then overwritten by the
/// copy. memmap2 is the standard crate (ripgrep's and polars' CSV readers map files the same
/// way) and already built for polars. A file changed by another program while it is read can
/// change the cells read, as with any reader; the mapping is private and read-only and lives
/// only for the parse.
pub enum FileBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

/// A data file's bytes for a reader that only reads them ([`FileBytes`]), or the error naming it.
pub fn map_file(path: &Path) -> Result<FileBytes, TableError> {
    FileBytes::open(path).map_err(|source| TableError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl FileBytes {
    fn open(path: &Path) -> std::io::Result<FileBytes> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        if len > 0 {
            // SAFETY: the map is read-only and private to this process; see the type's doc
            // for a file rewritten by another program meanwhile (truncated, a read past its new end
            // stops the process with SIGBUS, as in every program that maps files).
            if let Ok(map) = unsafe { memmap2::Mmap::map(&file) } {
                return Ok(FileBytes::Mapped(map));
            }
        }
        let mut bytes = Vec::with_capacity(len as usize);
        std::io::Read::read_to_end(&mut &file, &mut bytes)?;
        Ok(FileBytes::Read(bytes))
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Read(v) => v,
        }
    }
}

/// A file's bytes, or the error naming it.
fn read_file_bytes(path: &Path) -> Result<Vec<u8>, TableError> {
    std::fs::read(path).map_err(|source| TableError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A table's name: its file's name without the extension.
fn table_name(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_string()
}

/// A polars error while reading `path`, as the file's malformation.
fn polars_error(path: &Path) -> impl Fn(PolarsError) -> TableError + '_ {
    move |e| TableError::Malformed {
        path: path.to_path_buf(),
        row: None,
        message: e.to_string(),
    }
}

/// One column of a Parquet file read for a typed frame ([`read_parquet_columns`]).
#[derive(Debug)]
pub enum ParquetColumn {
    /// A column of integers or 64-bit floats: its values, `NaN` for a null. These are the
    /// numbers its text cells (as [`read_table_file`] gives them) parse to, without the text.
    Numbers(Vec<f64>),
    /// Any other column (strings, booleans, dates, 32-bit floats, ...): the column of this
    /// index in [`ParquetColumns::text`], the cells [`read_table_file`] gives it.
    Text(usize),
}

/// The columns of a Parquet file for a typed frame, in the file's order.
#[derive(Debug)]
pub struct ParquetColumns {
    pub names: Vec<String>,
    pub columns: Vec<ParquetColumn>,
    /// The text columns, in the file's order among themselves.
    pub text: RawTable,
}

/// Reads a Parquet file for a typed frame: integer and 64-bit float columns as numbers, except
/// those `as_text` names (a factor with given levels is typed from its text), the others as
/// [`read_table_file`]'s text cells. Typing a text cell back into a number would give the same
/// value (polars writes a 64-bit float's shortest round-trip text, and an integer's text parses
/// to the nearest float as `as f64` rounds it), so a frame built from this is the frame of the
/// text table, without the text: 1,000,000 rows of the benchmark registry in a tenth of the time.
pub fn read_parquet_columns(
    path: &Path,
    as_text: impl Fn(&str) -> bool,
) -> Result<ParquetColumns, TableError> {
    if !path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        return Err(TableError::UnsupportedExtension {
            path: path.to_path_buf(),
        });
    }
    let bytes = read_file_bytes(path)?;
    let df = parquet_from_bytes(path, bytes)?;
    let malformed = polars_error(path);
    let n_rows = df.height();
    let mut names = Vec::with_capacity(df.width());
    let mut columns = Vec::with_capacity(df.width());
    let mut text_names = Vec::new();
    let mut text_data = Vec::new();
    for column in df.into_columns() {
        let name = column_name(&column);
        let dtype = column.dtype();
        let numeric = (dtype.is_integer() || matches!(dtype, DataType::Float64)) && !as_text(&name);
        if numeric {
            let floats = column.cast(&DataType::Float64).map_err(&malformed)?;
            let ca = floats.f64().map_err(&malformed)?;
            let mut values = Vec::with_capacity(n_rows);
            // Any NaN as the one `"NaN".parse()` gives.
            values.extend(
                ca.iter()
                    .map(|v| v.filter(|x| !x.is_nan()).unwrap_or(f64::NAN)),
            );
            columns.push(ParquetColumn::Numbers(values));
        } else {
            columns.push(ParquetColumn::Text(text_data.len()));
            text_data.push(text_column(path, &name, &column, n_rows)?);
            text_names.push(name.clone());
        }
        names.push(name);
    }
    let text = RawTable {
        name: table_name(path),
        source: path.to_path_buf(),
        columns: text_names,
        data: text_data,
        n_rows,
        digest: None,
    };
    Ok(ParquetColumns {
        names,
        columns,
        text,
    })
}

/// A Parquet column's name as the export reader keeps it (trimmed, without a byte-order mark).
fn column_name(column: &Column) -> String {
    column
        .name()
        .as_str()
        .trim()
        .trim_start_matches('\u{feff}')
        .to_string()
}

/// A Parquet column's cells as text (polars' cast to strings), trimmed as CSV cells are.
fn text_column(
    path: &Path,
    name: &str,
    column: &Column,
    n_rows: usize,
) -> Result<TextColumn, TableError> {
    let malformed = polars_error(path);
    let text = column.cast(&DataType::String).map_err(&malformed)?;
    let ca = text.str().map_err(&malformed)?;
    let mut col = TextColumn::with_capacity(n_rows);
    for cell in ca.iter() {
        if !col.push(cell) {
            return Err(TableError::TooLarge {
                path: path.to_path_buf(),
                column: name.to_string(),
            });
        }
    }
    Ok(col)
}

fn frame_to_table(name: &str, path: &Path, df: DataFrame) -> Result<RawTable, TableError> {
    let n_rows = df.height();
    let mut names = Vec::with_capacity(df.width());
    let mut data = Vec::with_capacity(df.width());
    for column in df.into_columns() {
        let col_name = column_name(&column);
        data.push(text_column(path, &col_name, &column, n_rows)?);
        names.push(col_name);
        // `column` and its text cast are dropped here, keeping peak memory to one column.
    }
    Ok(RawTable {
        name: name.to_string(),
        source: path.to_path_buf(),
        columns: names,
        data,
        n_rows,
        digest: None,
    })
}

/// Values of one output column.
#[derive(Debug, Clone, PartialEq)]
pub enum OutValues {
    Text(Vec<Option<String>>),
    Float(Vec<Option<f64>>),
    Int(Vec<Option<i64>>),
}

impl OutValues {
    pub fn len(&self) -> usize {
        match self {
            OutValues::Text(v) => v.len(),
            OutValues::Float(v) => v.len(),
            OutValues::Int(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A named output column.
#[derive(Debug, Clone, PartialEq)]
pub struct OutColumn {
    pub name: String,
    pub values: OutValues,
}

impl OutColumn {
    pub fn new(name: impl Into<String>, values: OutValues) -> Self {
        OutColumn {
            name: name.into(),
            values,
        }
    }
}

/// Writes columns to `path` as CSV or Parquet (by extension). Missing values are empty CSV
/// cells / Parquet nulls; floats are written in their shortest round-trip form.
pub fn write_table_file(path: &Path, columns: &[OutColumn]) -> Result<(), TableError> {
    let werr = |e: PolarsError| TableError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let height = columns.first().map(|c| c.values.len()).unwrap_or(0);
    let mut cols = Vec::with_capacity(columns.len());
    for c in columns {
        if c.values.len() != height {
            return Err(TableError::RaggedColumns {
                path: path.to_path_buf(),
                column: c.name.clone(),
                len: c.values.len(),
                expected: height,
            });
        }
        let name: PlSmallStr = c.name.as_str().into();
        let col = match &c.values {
            OutValues::Text(v) => Column::new(name, v),
            OutValues::Float(v) => Column::new(name, v),
            OutValues::Int(v) => Column::new(name, v),
        };
        cols.push(col);
    }
    let mut df = DataFrame::new(height, cols).map_err(werr)?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    let create = || {
        File::create(path).map_err(|source| TableError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    match ext.as_deref() {
        Some("csv") => {
            let mut f = create()?;
            CsvWriter::new(&mut f)
                .include_header(true)
                .finish(&mut df)
                .map_err(werr)
        }
        Some("parquet") => {
            let f = create()?;
            ParquetWriter::new(f)
                .finish(&mut df)
                .map(|_| ())
                .map_err(werr)
        }
        _ => Err(TableError::UnsupportedExtension {
            path: path.to_path_buf(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_scan_finds_ragged_rows_and_open_quotes() {
        assert_eq!(first_structure_problem(b"a,b\n1,2\n3,4\n"), None);
        assert_eq!(first_structure_problem(b"a,b\n1,2\n\n3,4"), None);
        assert_eq!(
            first_structure_problem(b"a,b\n1,2\n3\n").map(|p| p.0),
            Some(3)
        );
        assert_eq!(
            first_structure_problem(b"a,b\n\"x,y\",2\n3,4,5\n").map(|p| p.0),
            Some(3)
        );
        assert_eq!(
            first_structure_problem(b"a,b\n1,\"2\n").map(|p| p.0),
            Some(2)
        );
    }

    #[test]
    fn parallel_chunks_give_the_sequential_cells_with_quoted_line_feeds() {
        // > 8 MB so that the body is cut; quoted fields with line feeds, commas and `""`
        // around the cut points, and a stray quote inside an unquoted field (the parity guess
        // is then wrong and the sequential fallback must take over).
        let mut text = String::from("id,note,y\n");
        let mut k = 0;
        while text.len() < 9 << 20 {
            let note = match k % 4 {
                0 => "\"line one\nline two, \"\"quoted\"\"\"".to_string(),
                1 => "plain".to_string(),
                2 => String::new(),
                _ => format!("\"{}\n\"", k),
            };
            text.push_str(&format!("P{k},{note},{}.5\n", k % 97));
            k += 1;
        }
        let sequential = |t: &str| {
            let body = &t[t.find('\n').unwrap() + 1..];
            let empty = || TextColumns((0..3).map(|_| TextColumn::default()).collect());
            let c = parse_body(body, 3, empty()).ok().unwrap();
            (0..c.n_rows)
                .map(|r| {
                    (0..3)
                        .map(|j| c.sink.0[j].get(r).map(str::to_string))
                        .collect()
                })
                .collect::<Vec<Vec<Option<String>>>>()
        };
        let parallel = |t: &str| {
            let raw = csv_from_str("t", Path::new("t.csv"), t).unwrap();
            (0..raw.n_rows())
                .map(|r| (0..3).map(|j| raw.cell(r, j).map(str::to_string)).collect())
                .collect::<Vec<Vec<Option<String>>>>()
        };
        assert!(split_body(&text[10..], 2).len() == 2);
        assert_eq!(parallel(&text), sequential(&text));
        let stray = text.replacen("plain", "pl\"ain", 1);
        assert_eq!(parallel(&stray), sequential(&stray));
    }

    #[test]
    fn text_column_trims_and_maps_empty_to_none() {
        let t = RawTable::from_columns(
            "t",
            Path::new("t.csv"),
            vec![
                ("a".to_string(), vec![Some(" x "), None, Some("  ")]),
                ("b".to_string(), vec![Some("1"), Some("22"), Some("333")]),
            ],
        )
        .unwrap();
        assert_eq!(t.n_rows(), 3);
        assert_eq!(t.cell(0, 0), Some("x"));
        assert_eq!(t.cell(1, 0), None);
        assert_eq!(t.cell(2, 0), None);
        assert_eq!(t.cell(2, 1), Some("333"));
        assert_eq!(t.cell(3, 1), None);
        assert_eq!(t.cell(0, 2), None);
        assert_eq!(t.column_index("b"), Some(1));
    }

    #[test]
    fn csv_and_parquet_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cols = vec![
            OutColumn::new(
                "id",
                OutValues::Text(vec![Some("P1".into()), Some("P, 2".into()), None]),
            ),
            OutColumn::new(
                "x",
                OutValues::Float(vec![Some(2.6), None, Some(1.0 / 3.0)]),
            ),
            OutColumn::new("n", OutValues::Int(vec![Some(1), Some(2), None])),
        ];
        for ext in ["csv", "parquet"] {
            let p = dir.path().join(format!("t.{ext}"));
            write_table_file(&p, &cols).unwrap();
            let t = read_table_file(&p).unwrap();
            assert_eq!(t.name(), "t");
            assert_eq!(t.columns(), &["id", "x", "n"]);
            assert_eq!(t.n_rows(), 3);
            assert_eq!(t.cell(1, 0), Some("P, 2"));
            assert_eq!(t.cell(2, 0), None);
            assert_eq!(t.cell(0, 1).unwrap().parse::<f64>().unwrap(), 2.6);
            assert_eq!(t.cell(2, 1).unwrap().parse::<f64>().unwrap(), 1.0 / 3.0);
            assert_eq!(t.cell(1, 2), Some("2"));
            assert_eq!(t.cell(2, 2), None);
        }
    }
}
