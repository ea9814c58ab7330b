//! The model data's CSV reader: cells typed while the file is tokenized, as R's `read.csv`
//! (with `stringsAsFactors = TRUE`) types them.
//!
//! The same frame as [`Frame::from_table`] over [`crate::table::csv_from_str`] (the same
//! tokenizer, cells, types, levels and first error), without keeping the text of every cell:
//! per chunk of the file (parsed in parallel) a column collects numbers until a cell is not a
//! number, and a text column collects codes of labels interned by their slice of the file. A
//! chunk whose column turns out to be text after its numbers were collected (a later cell, or
//! another chunk, is not a number) is tokenized again with that column as labels: a mixed
//! column costs one more pass over its chunks, never a different result.
//!
//! 1,000,000 rows of the benchmark's registry (38 MB, `benches/lmm_vs_lme4.sh`): read and
//! typed in 0.18 s, against 0.26 s through the text table (best of 7 runs each, 2 cores).
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use thiserror::Error;

use super::{check_level_order, sort_r_collate_by, Column, Frame, FrameError};
use crate::table::{csv_chunks, record_capacity, reparse_chunk, Field, RecordSink, TableError};

/// foldhash (already built for polars' hash tables) instead of SipHash: interning a label is
/// the inner loop of a text column, and nothing here depends on the hash order.
type LabelIndex<'a> = HashMap<Cow<'a, str>, u32, foldhash::fast::FixedState>;

/// Code of a missing cell in a chunk's label codes.
const MISSING: u32 = u32::MAX;

/// Errors reading a CSV file into a [`Frame`].
#[derive(Debug, Error)]
pub enum ReadFrameError {
    /// The file's structure (UTF-8, header, ragged rows, quotes), as the export reader says it.
    #[error(transparent)]
    Table(#[from] TableError),
    /// Typing the cells (a level outside a given level order).
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// The trimmed text of a cell, as [`crate::table::RawTable`] keeps it (Unicode whitespace
/// removed at both ends; the fast path checks the two end bytes).
#[inline]
fn trimmed(c: &str) -> &str {
    let b = c.as_bytes();
    let plain = |x: u8| x.is_ascii() && !x.is_ascii_whitespace();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) if plain(f) && plain(l) => c,
        _ => c.trim(),
    }
}

/// The number a cell holds, as `str::parse::<f64>` reads it. Plain decimals (`-12.5`, `8.363373`:
/// at most 19 digits whose integer fits in 53 bits, at most 22 after the point) are read by
/// Clinger's fast path, `m / 10^k` with both exact, which is the correctly rounded value that
/// `parse` also returns; anything else (exponents, `inf`, long mantissas) goes to `parse`.
#[inline]
pub(super) fn parse_number(t: &str) -> Option<f64> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let b = t.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let mut m: u64 = 0;
    let mut n_digits = 0usize;
    let mut frac: Option<usize> = None;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                n_digits += 1;
                if n_digits > 19 {
                    return t.parse().ok();
                }
                m = m * 10 + u64::from(c - b'0');
                if let Some(f) = frac.as_mut() {
                    *f += 1;
                }
            }
            b'.' if frac.is_none() => frac = Some(0),
            _ => return t.parse().ok(),
        }
    }
    let k = frac.unwrap_or(0);
    if n_digits == 0 || m > 1 << 53 || k > 22 {
        return t.parse().ok();
    }
    let v = m as f64 / POW10[k];
    Some(if neg { -v } else { v })
}

/// One column of one chunk, typed so far.
enum Typed<'a> {
    /// Only missing cells so far (their number).
    Empty(usize),
    /// Every cell a number or missing (`NaN`).
    Numbers(Vec<f64>),
    /// Text: labels in order of first appearance in the chunk and per row a label's index
    /// ([`MISSING`] for a missing cell); `last` is the previous cell's code (rows of one
    /// participant repeat the id).
    Labels {
        index: LabelIndex<'a>,
        labels: Vec<Cow<'a, str>>,
        codes: Vec<u32>,
        last: u32,
    },
    /// Numbers were collected and then a cell was not one: the chunk is read again with the
    /// column as labels.
    NotNumeric,
}

impl<'a> Typed<'a> {
    fn labels(missing: usize, capacity: usize) -> Self {
        let mut codes = Vec::with_capacity(capacity.max(missing));
        codes.resize(missing, MISSING);
        Typed::Labels {
            index: LabelIndex::default(),
            labels: Vec::new(),
            codes,
            last: MISSING,
        }
    }

    fn is_labels(&self) -> bool {
        matches!(self, Typed::Labels { .. })
    }
}

/// The typing sink of one chunk (see the module documentation).
struct TypedChunk<'a> {
    columns: Vec<Typed<'a>>,
    capacity: usize,
}

impl<'a> TypedChunk<'a> {
    /// Columns start undecided, or as labels where `as_labels` says so.
    fn new(text: &'a str, as_labels: &[bool]) -> Self {
        let capacity = record_capacity(text);
        TypedChunk {
            columns: as_labels
                .iter()
                .map(|&l| {
                    if l {
                        Typed::labels(0, capacity)
                    } else {
                        Typed::Empty(0)
                    }
                })
                .collect(),
            capacity,
        }
    }
}

impl<'a> RecordSink<'a> for TypedChunk<'a> {
    #[inline]
    fn field(&mut self, k: usize, value: Field<'a, '_>) -> bool {
        let Some(col) = self.columns.get_mut(k) else {
            return true;
        };
        let t = trimmed(value.as_str());
        let missing = t.is_empty() || t == "NA";
        match col {
            Typed::Empty(n) => {
                if missing {
                    *n += 1;
                    return true;
                }
                let before = *n;
                match parse_number(t) {
                    Some(x) => {
                        let mut v = Vec::with_capacity(self.capacity.max(before + 1));
                        v.resize(before, f64::NAN);
                        v.push(x);
                        *col = Typed::Numbers(v);
                        return true;
                    }
                    None => *col = Typed::labels(before, self.capacity),
                }
            }
            Typed::Numbers(v) => {
                if missing {
                    v.push(f64::NAN);
                } else {
                    match parse_number(t) {
                        Some(x) => v.push(x),
                        None => *col = Typed::NotNumeric,
                    }
                }
                return true;
            }
            Typed::NotNumeric => return true,
            Typed::Labels { .. } => {}
        }
        let Typed::Labels {
            index,
            labels,
            codes,
            last,
        } = col
        else {
            return true;
        };
        if missing {
            codes.push(MISSING);
            return true;
        }
        if let Some(prev) = labels.get(*last as usize) {
            if prev.as_ref() == t {
                codes.push(*last);
                return true;
            }
        }
        let code = match index.get(t) {
            Some(&c) => c,
            None => {
                let label: Cow<'a, str> = match value {
                    Field::Slice(s) => Cow::Borrowed(trimmed(s)),
                    Field::Unescaped(_) => Cow::Owned(t.to_string()),
                };
                let c = labels.len() as u32;
                index.insert(label.clone(), c);
                labels.push(label);
                c
            }
        };
        *last = code;
        codes.push(code);
        true
    }
}

/// Reads a `.csv` or `.parquet` file into a typed frame, as R's `read.csv` types it: numeric
/// columns become numbers, others factors (R-sorted levels, or those of `level_orders`), empty
/// or `NA` is missing. CSV is typed while it is tokenized ([`frame_from_csv`]); Parquet's
/// integer and 64-bit float columns are taken as numbers and its other columns typed from the
/// export reader's text cells ([`Frame::from_parquet_columns`]), the frame of its text table.
pub fn read_frame_file(
    path: &Path,
    level_orders: &HashMap<String, Vec<String>>,
) -> Result<Frame, ReadFrameError> {
    let is_csv = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if !is_csv {
        let parquet =
            crate::table::read_parquet_columns(path, |name| level_orders.contains_key(name))?;
        return Ok(Frame::from_parquet_columns(parquet, level_orders)?);
    }
    let bytes = crate::table::map_file(path)?;
    frame_from_csv(
        path,
        crate::table::csv_text(path, bytes.as_slice())?,
        level_orders,
    )
}

/// Reads CSV text into a typed frame: [`Frame::from_table`] of [`crate::table::csv_from_str`]
/// (`source` names the file in messages), with `level_orders` fixing the levels of the columns
/// they name.
pub fn frame_from_csv(
    source: &Path,
    text: &str,
    level_orders: &HashMap<String, Vec<String>>,
) -> Result<Frame, ReadFrameError> {
    use rayon::prelude::*;
    let parsed = csv_chunks(source, text, |chunk, names: &[String]| {
        let as_labels: Vec<bool> = names.iter().map(|n| level_orders.contains_key(n)).collect();
        TypedChunk::new(chunk, &as_labels)
    })?;
    let names = parsed.names;
    let n_cols = names.len();
    let mut chunks: Vec<(&str, TypedChunk, usize)> = parsed
        .chunks
        .into_iter()
        .map(|c| (c.text, c.sink, c.n_rows))
        .collect();
    // A column is text when any chunk saw text in it; chunks that collected its numbers are
    // read again with it as labels.
    let as_labels: Vec<bool> = (0..n_cols)
        .map(|k| {
            level_orders.contains_key(&names[k])
                || chunks.iter().any(|(_, c, _)| {
                    matches!(c.columns[k], Typed::Labels { .. } | Typed::NotNumeric)
                })
        })
        .collect();
    chunks.par_iter_mut().for_each(|(text, sink, _)| {
        let stale =
            (0..n_cols).any(|k| as_labels[k] && !matches!(sink.columns[k], Typed::Labels { .. }));
        if stale {
            if let Some(again) = reparse_chunk(text, n_cols, TypedChunk::new(text, &as_labels)) {
                *sink = again;
            }
        }
    });
    let n_rows: usize = chunks.iter().map(|c| c.2).sum();
    let mut per_column: Vec<Vec<(Typed, usize)>> = (0..n_cols).map(|_| Vec::new()).collect();
    for (_, sink, rows) in chunks {
        for (k, col) in sink.columns.into_iter().enumerate() {
            per_column[k].push((col, rows));
        }
    }
    let columns: Vec<Result<Column, FrameError>> = per_column
        .into_par_iter()
        .zip(names.par_iter())
        .map(|(parts, name)| merge_column(name, parts, n_rows, level_orders.get(name)))
        .collect();
    Ok(Frame::from_typed(&names, columns)?)
}

/// One column from its chunks (each with its number of rows): numbers when no chunk saw text,
/// else a factor with R-sorted levels or the levels of `order`.
fn merge_column(
    name: &str,
    parts: Vec<(Typed, usize)>,
    n_rows: usize,
    order: Option<&Vec<String>>,
) -> Result<Column, FrameError> {
    if let Some(order) = order {
        check_level_order(name, order)?;
    }
    if !parts.iter().any(|(t, _)| t.is_labels()) {
        let mut out: Vec<f64> = Vec::with_capacity(n_rows);
        for (t, rows) in parts {
            match t {
                Typed::Numbers(v) => out.extend_from_slice(&v),
                _ => out.resize(out.len() + rows, f64::NAN),
            }
        }
        return Ok(Column::Numeric(out));
    }
    // Labels of all chunks in order of first appearance, each chunk's codes mapped to them.
    let n_local: usize = parts
        .iter()
        .map(|(t, _)| match t {
            Typed::Labels { labels, .. } => labels.len(),
            _ => 0,
        })
        .sum();
    let mut global: HashMap<&str, u32, foldhash::fast::FixedState> =
        HashMap::with_capacity_and_hasher(n_local, Default::default());
    let mut seen: Vec<&str> = Vec::with_capacity(n_local);
    let mut maps: Vec<Vec<u32>> = Vec::with_capacity(parts.len());
    for (t, _) in &parts {
        let Typed::Labels { labels, .. } = t else {
            maps.push(Vec::new());
            continue;
        };
        maps.push(
            labels
                .iter()
                .map(|l| {
                    *global.entry(l.as_ref()).or_insert_with(|| {
                        seen.push(l.as_ref());
                        (seen.len() - 1) as u32
                    })
                })
                .collect(),
        );
    }
    drop(global);
    // Final code of each first-appearance label: its place among the sorted levels, or in
    // the given order (None: not among the given levels).
    let (levels, final_of): (Vec<String>, Vec<Option<u32>>) = match order {
        Some(order) => {
            let pos: HashMap<&str, u32> = order
                .iter()
                .enumerate()
                .map(|(i, l)| (l.as_str(), i as u32))
                .collect();
            (
                order.clone(),
                seen.iter().map(|s| pos.get(s).copied()).collect(),
            )
        }
        None => {
            let mut sorted: Vec<u32> = (0..seen.len() as u32).collect();
            sort_r_collate_by(&mut sorted, |&i| seen[i as usize]);
            let mut final_of = vec![None; seen.len()];
            for (new, &i) in sorted.iter().enumerate() {
                final_of[i as usize] = Some(new as u32);
            }
            (
                sorted
                    .iter()
                    .map(|&i| seen[i as usize].to_string())
                    .collect(),
                final_of,
            )
        }
    };
    let mut codes: Vec<Option<u32>> = Vec::with_capacity(n_rows);
    for ((t, rows), map) in parts.iter().zip(&maps) {
        let Typed::Labels { codes: local, .. } = t else {
            codes.resize(codes.len() + rows, None);
            continue;
        };
        // chunk code -> final code (u32::MAX: outside the given levels)
        let to_final: Vec<u32> = map
            .iter()
            .map(|&g| final_of[g as usize].unwrap_or(u32::MAX))
            .collect();
        for &c in local {
            if c == MISSING {
                codes.push(None);
                continue;
            }
            let f = to_final[c as usize];
            if f == u32::MAX {
                return Err(FrameError::UnknownLevel {
                    column: name.to_string(),
                    row: codes.len(),
                    value: seen[map[c as usize] as usize].to_string(),
                    levels,
                });
            }
            codes.push(Some(f));
        }
    }
    Ok(Column::Factor { codes, levels })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::csv_from_str;
    use proptest::prelude::*;

    /// The reference: the export reader's text table, typed by [`Frame::from_table`].
    fn via_table(
        text: &str,
        orders: &HashMap<String, Vec<String>>,
    ) -> Result<Frame, ReadFrameError> {
        let raw = csv_from_str("t", Path::new("t.csv"), text)?;
        Ok(Frame::from_table(&raw, orders)?)
    }

    fn same(text: &str, orders: &HashMap<String, Vec<String>>) {
        let typed = frame_from_csv(Path::new("t.csv"), text, orders);
        assert_same_frame(typed, via_table(text, orders));
    }

    /// The same frame (numbers to the bit) or the same error.
    fn assert_same_frame(
        typed: Result<Frame, ReadFrameError>,
        reference: Result<Frame, ReadFrameError>,
    ) {
        match (typed, reference) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.names(), b.names());
                assert_eq!(a.n_rows(), b.n_rows());
                for name in a.names() {
                    match (a.column(name).unwrap(), b.column(name).unwrap()) {
                        (Column::Numeric(x), Column::Numeric(y)) => {
                            assert_eq!(x.len(), y.len());
                            for (u, v) in x.iter().zip(y) {
                                assert!(u.to_bits() == v.to_bits(), "{name}: {u} vs {v}");
                            }
                        }
                        (x, y) => assert_eq!(x, y, "column {name}"),
                    }
                }
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!(
                "typed {:?} against the text table {:?}",
                a.is_ok(),
                b.is_ok()
            ),
        }
    }

    fn cell() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("NA".to_string()),
            Just(" NA ".to_string()),
            Just("  ".to_string()),
            (-1000i32..1000).prop_map(|x| x.to_string()),
            (-1.0e6f64..1.0e6).prop_map(|x| format!("{x}")),
            Just("1e-3".to_string()),
            Just(" 2.5 ".to_string()),
            Just("inf".to_string()),
            Just("P01".to_string()),
            Just("p01".to_string()),
            Just(" b ".to_string()),
            Just("\"q, \"\"x\"\"\"".to_string()),
            Just("\"P01\"".to_string()),
            Just("\"3\"".to_string()),
            Just("\"a\nb\"".to_string()),
            Just("ä".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn typed_reader_equals_the_text_table(
            rows in prop::collection::vec(prop::collection::vec(cell(), 3), 0..12),
            crlf in any::<bool>(),
            blank in any::<bool>(),
            ragged in any::<bool>(),
            order in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = format!("a,b,c{eol}");
            for (i, r) in rows.iter().enumerate() {
                if blank && i == 1 {
                    text.push_str(eol);
                }
                if ragged && i == 2 {
                    text.push_str(&format!("{}{eol}", r[0]));
                    continue;
                }
                text.push_str(&format!("{}{eol}", r.join(",")));
            }
            let mut orders = HashMap::new();
            if order {
                orders.insert("b".to_string(), vec!["P01".to_string(), "b".to_string()]);
            }
            same(&text, &orders);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn plain_decimals_read_as_parse_reads_them(
            int in 0u64..u64::MAX,
            digits in 0usize..21,
            point in prop::option::of(0usize..21),
            sign in prop_oneof![Just(""), Just("-"), Just("+")],
        ) {
            let mut d = int.to_string();
            d.truncate(digits.max(1));
            if let Some(p) = point {
                d.insert(p.min(d.len()), '.');
            }
            let t = format!("{sign}{d}");
            let ours = parse_number(&t).map(f64::to_bits);
            prop_assert_eq!(ours, t.parse::<f64>().ok().map(f64::to_bits), "{}", t);
        }
    }

    #[test]
    fn numbers_outside_the_fast_path_are_read_by_parse() {
        for t in [
            "1e5",
            "1E-3",
            "inf",
            "-Infinity",
            "NaN",
            ".",
            "-",
            "+",
            "",
            "1.2.3",
            "0x10",
            "9007199254740993",
            "12345678901234567890",
            "0.12345678901234567890123",
            "1_000",
            " 1",
            "١",
            "-0",
            "-0.0",
            ".5",
            "5.",
            "00012.50",
        ] {
            assert_eq!(
                parse_number(t).map(f64::to_bits),
                t.parse::<f64>().ok().map(f64::to_bits),
                "{t}"
            );
        }
    }

    /// Parquet's number columns taken as numbers give the frame of the file's text table:
    /// 64-bit floats of every kind of bit pattern, integers beyond 2^53, nulls, and the columns
    /// that stay text (strings, booleans, 32-bit floats, a column with given levels).
    #[test]
    fn a_parquet_frame_is_the_frame_of_its_text_table() {
        use polars::prelude::{Column as PlColumn, DataFrame, ParquetWriter};
        let n = 3000usize;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let special = [
            0.1,
            1.0 / 3.0,
            -0.0,
            5e-324,
            1.7976931348623157e308,
            f64::INFINITY,
            f64::NAN,
            123_456_789.123_456_79,
            2.5e-8,
        ];
        let floats: Vec<Option<f64>> = (0..n)
            .map(|i| match i % 11 {
                0 => None,
                1 => Some(special[(i / 11) % special.len()]),
                2 => Some((next() % 2_000_001) as f64 / 1000.0 - 1000.0),
                _ => Some(f64::from_bits(next())).filter(|x| x.is_finite()),
            })
            .collect();
        let ints: Vec<Option<i64>> = (0..n)
            .map(|i| match i % 7 {
                0 => None,
                1 => Some((1i64 << 53) + (i as i64 % 5)),
                2 => Some(i64::MIN + i as i64),
                3 => Some(i64::MAX - i as i64),
                _ => Some(next() as i64 % 100),
            })
            .collect();
        let small: Vec<Option<i32>> = (0..n).map(|i| Some((i % 9) as i32 - 4)).collect();
        let unsigned: Vec<Option<u64>> = (0..n).map(|i| Some(u64::MAX - i as u64)).collect();
        let singles: Vec<Option<f32>> = (0..n)
            .map(|i| (i % 5 != 0).then_some(i as f32 / 7.0))
            .collect();
        let flags: Vec<Option<bool>> = (0..n).map(|i| (i % 4 != 0).then_some(i % 3 == 0)).collect();
        let labels: Vec<Option<String>> = (0..n)
            .map(|i| match i % 6 {
                0 => None,
                1 => Some("NA".into()),
                2 => Some(format!("  P{:03} ", i % 17)),
                _ => Some(format!("p{}", i % 13)),
            })
            .collect();
        let numeric_text: Vec<Option<String>> = (0..n)
            .map(|i| (i % 3 != 0).then(|| format!("{}.5", i % 10)))
            .collect();
        let mut df = DataFrame::new(
            n,
            vec![
                PlColumn::new("x".into(), floats),
                PlColumn::new("k".into(), ints),
                PlColumn::new("s".into(), small),
                PlColumn::new("u".into(), unsigned),
                PlColumn::new("f32".into(), singles),
                PlColumn::new("flag".into(), flags),
                PlColumn::new("id".into(), labels),
                PlColumn::new("t".into(), numeric_text),
            ],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.parquet");
        ParquetWriter::new(std::fs::File::create(&path).unwrap())
            .finish(&mut df)
            .unwrap();
        let via_text = |orders: &HashMap<String, Vec<String>>| -> Result<Frame, ReadFrameError> {
            let raw = crate::table::read_table_file(&path)?;
            Ok(Frame::from_table(&raw, orders)?)
        };
        let none = HashMap::new();
        assert_same_frame(read_frame_file(&path, &none), via_text(&none));
        let frame = read_frame_file(&path, &none).unwrap();
        assert!(matches!(frame.column("k"), Some(Column::Numeric(_))));
        assert!(matches!(frame.column("id"), Some(Column::Factor { .. })));
        // Given levels of an integer column: typed from its text, as the text table types it;
        // a level outside them is the same error.
        let mut orders = HashMap::new();
        let levels: Vec<String> = (-4..=4).map(|v: i32| v.to_string()).collect();
        orders.insert("s".to_string(), levels);
        assert_same_frame(read_frame_file(&path, &orders), via_text(&orders));
        assert!(matches!(
            read_frame_file(&path, &orders).unwrap().column("s"),
            Some(Column::Factor { .. })
        ));
        orders.insert("s".to_string(), vec!["0".to_string()]);
        assert!(read_frame_file(&path, &orders).is_err());
        assert_same_frame(read_frame_file(&path, &orders), via_text(&orders));
    }

    #[test]
    fn structure_and_level_errors_are_those_of_the_text_table() {
        let none = HashMap::new();
        for text in [
            "",
            "a,a\n1,2\n",
            "a,b\n1\n",
            "a,b\n1,\"2\n",
            "\u{feff}a,b\n1,x\n",
            "a\n",
        ] {
            same(text, &none);
        }
        let mut orders = HashMap::new();
        orders.insert("g".to_string(), vec!["x".to_string(), "x".to_string()]);
        same("g\nx\n", &orders);
        orders.insert("g".to_string(), vec!["x".to_string()]);
        same("g\nx\ny\nz\n", &orders);
        same("g\nx\n\nNA\n", &orders);
    }

    #[test]
    fn a_column_that_turns_to_text_in_a_later_chunk_is_read_again_as_labels() {
        // > 8 MB so that the body is cut in two; `x` holds numbers until the last rows (one of
        // them quoted with an escape), `y` numbers throughout, `g` repeats labels.
        let mut text = String::from("g,x,y\n");
        let mut k = 0usize;
        while text.len() < 9 << 20 {
            text.push_str(&format!("G{},{},{}.25\n", k / 5, k % 7, k % 101));
            k += 1;
        }
        text.push_str("G0,\"text, \"\"quoted\"\"\",1\nG1,NA,2\n");
        let chunks = csv_chunks(Path::new("t.csv"), &text, |c, names: &[String]| {
            TypedChunk::new(c, &vec![false; names.len()])
        })
        .unwrap();
        assert_eq!(chunks.chunks.len(), 2);
        assert!(matches!(
            chunks.chunks[0].sink.columns[1],
            Typed::Numbers(_)
        ));
        same(&text, &HashMap::new());
        let frame = frame_from_csv(Path::new("t.csv"), &text, &HashMap::new()).unwrap();
        assert!(matches!(frame.column("x"), Some(Column::Factor { .. })));
        assert!(matches!(frame.column("y"), Some(Column::Numeric(_))));
    }
}
