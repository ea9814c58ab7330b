//! CSV dialects: the separator, quote, decimal mark, encoding and line ends of a delimited
//! text file, detected from its bytes (as R's data.table::fread and Python's csv.Sniffer
//! guess them) or set in the map.
//!
//! Encoding: a UTF-8 byte-order mark (Excel's "CSV UTF-8") is removed; UTF-16 with a BOM is
//! decoded; other files are UTF-8 when they are valid UTF-8, else Windows-1252 (what Dutch
//! Excel writes as "CSV (puntkomma gescheiden)"). Separator: of `,` `;` tab `|`, the one
//! that splits the first lines (outside quotes) into the same number of fields, more than
//! one. Decimal comma: with a separator other than `,`, cells such as `3,5` and no cells
//! such as `3.5`. Quotes are RFC 4180 (`"` doubled inside a quoted field).

use std::path::Path;

use encoding_rs::Encoding;

use super::error::ImportError;
use super::source::{ColumnData, SourceColumn, SourceFormat, SourceTable};

/// The dialect of one CSV file.
#[derive(Debug, Clone, PartialEq)]
pub struct Dialect {
    pub separator: char,
    pub quote: char,
    pub decimal_comma: bool,
    /// Encoding name (WHATWG label, e.g. `UTF-8`, `windows-1252`).
    pub encoding: String,
    pub bom: bool,
    pub crlf: bool,
    /// What was detected rather than set in the map, for the import report.
    pub detected: Vec<&'static str>,
}

impl Dialect {
    pub fn describe(&self) -> String {
        let sep = match self.separator {
            '\t' => "tab".to_string(),
            c => format!("'{c}'"),
        };
        format!(
            "separator {sep}, decimal {}, quote {}, {}{}{}",
            if self.decimal_comma { "comma" } else { "point" },
            self.quote,
            self.encoding,
            if self.bom { " with BOM" } else { "" },
            if self.crlf { ", CRLF line ends" } else { "" }
        )
    }
}

/// Dialect settings of a source in the map; `None` = detect.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DialectOverrides {
    pub separator: Option<char>,
    pub quote: Option<char>,
    /// `','` or `'.'`.
    pub decimal: Option<char>,
    pub encoding: Option<String>,
}

/// Reads a CSV file with its dialect detected or set.
pub fn read_csv(path: &Path, over: &DialectOverrides) -> Result<SourceTable, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    parse_csv(&bytes, path, over)
}

/// Decodes `bytes` to text: (text, encoding name, BOM present, detected).
fn decode(
    bytes: &[u8],
    path: &Path,
    over: &DialectOverrides,
) -> Result<(String, String, bool, bool), ImportError> {
    if let Some(label) = &over.encoding {
        let enc = Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| ImportError::Malformed {
            file: path.to_path_buf(),
            message: format!(
                "unknown encoding \"{label}\" in the map: use e.g. \"UTF-8\", \"windows-1252\", \"ISO-8859-1\""
            ),
        })?;
        let (text, used, _) = enc.decode(bytes);
        let bom = Encoding::for_bom(bytes).is_some();
        return Ok((text.into_owned(), used.name().to_string(), bom, false));
    }
    if let Some((enc, n)) = Encoding::for_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(bytes.get(n..).unwrap_or(&[]));
        return Ok((text.into_owned(), enc.name().to_string(), true, true));
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok((s.to_string(), "UTF-8".into(), false, true)),
        Err(_) => {
            let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
            Ok((text.into_owned(), "windows-1252".into(), false, true))
        }
    }
}

/// Splits `text` into records of fields with the given separator and quote, by the crate's
/// one CSV tokenizer ([`crate::table::csv_records`]: a quote opens a field only as its first
/// character; a record ends at a line feed, a carriage return before it is trimmed with the
/// cell). Returns the records and, for each, its 1-based starting line; trailing blank lines
/// are dropped. An unclosed quote is an error naming the line where its record began.
fn split_records(
    text: &str,
    sep: char,
    quote: char,
    limit: Option<usize>,
) -> Result<(Vec<Vec<String>>, Vec<usize>), usize> {
    let (Ok(sep), Ok(quote)) = (u8::try_from(sep), u8::try_from(quote)) else {
        return Err(1);
    };
    let (mut records, mut starts) = crate::table::csv_records(text, (sep, quote), limit)?;
    // trailing blank lines
    while records
        .last()
        .is_some_and(|r| r.len() == 1 && r[0].trim().is_empty())
    {
        records.pop();
        starts.pop();
    }
    Ok((records, starts))
}

/// The separator that splits the first lines into equally many fields (more than one).
fn detect_separator(text: &str, quote: char) -> Option<char> {
    let mut best: Option<(char, usize, usize)> = None; // (sep, consistent lines, fields)
    for sep in [',', ';', '\t', '|'] {
        let Ok((recs, _)) = split_records(text, sep, quote, Some(30)) else {
            continue;
        };
        let Some(n) = recs.first().map(Vec::len) else {
            continue;
        };
        if n < 2 {
            continue;
        }
        let consistent = recs.iter().filter(|r| r.len() == n).count();
        let better = match best {
            None => true,
            Some((_, c, f)) => consistent > c || (consistent == c && n > f),
        };
        if better {
            best = Some((sep, consistent, n));
        }
    }
    best.map(|b| b.0)
}

fn is_comma_decimal(s: &str) -> bool {
    let s = s.trim().trim_start_matches(['-', '+']);
    match s.split_once(',') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

fn is_point_decimal(s: &str) -> bool {
    let s = s.trim().trim_start_matches(['-', '+']);
    match s.split_once('.') {
        Some((a, b)) => {
            !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// Parses a CSV file's bytes.
pub fn parse_csv(
    bytes: &[u8],
    path: &Path,
    over: &DialectOverrides,
) -> Result<SourceTable, ImportError> {
    let (text, encoding, bom, enc_detected) = decode(bytes, path, over)?;
    let mut detected = Vec::new();
    if enc_detected {
        detected.push("encoding");
    }
    let quote = over.quote.unwrap_or('"');
    let separator = match over.separator {
        Some(s) => s,
        None => {
            detected.push("separator");
            detect_separator(&text, quote).unwrap_or(',')
        }
    };
    let (records, starts) = split_records(&text, separator, quote, None).map_err(|line| {
        ImportError::Malformed {
            file: path.to_path_buf(),
            message: format!(
                "line {line}: a quoted field ({quote}) is never closed; check the quote character (set `quote` in the map's [[sources]] entry)"
            ),
        }
    })?;
    let crlf = text.contains("\r\n");
    let mut it = records.into_iter().zip(starts);
    let Some((header, _)) = it.next() else {
        return Err(ImportError::Malformed {
            file: path.to_path_buf(),
            message: "the file is empty (no header row)".into(),
        });
    };
    let names: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(k, h)| {
            let h = h.trim();
            if h.is_empty() {
                format!("column_{}", k + 1)
            } else {
                h.to_string()
            }
        })
        .collect();
    let mut cols: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
    let mut n_rows = 0;
    for (rec, line) in it {
        if rec.len() == 1 && rec[0].trim().is_empty() && names.len() > 1 {
            // a blank line: a row of empty cells
            for c in cols.iter_mut() {
                c.push(None);
            }
            n_rows += 1;
            continue;
        }
        if rec.len() != names.len() {
            let sep = match separator {
                '\t' => "tab".to_string(),
                c => format!("'{c}'"),
            };
            return Err(ImportError::Malformed {
                file: path.to_path_buf(),
                message: format!(
                    "line {line} has {} fields but the header has {} (separator {sep}{}); check the separator and quote (set `separator` / `quote` in the map's [[sources]] entry)",
                    rec.len(),
                    names.len(),
                    if over.separator.is_none() { ", detected" } else { ", from the map" }
                ),
            });
        }
        for (c, v) in cols.iter_mut().zip(rec) {
            let t = v.trim();
            c.push((!t.is_empty()).then(|| t.to_string()));
        }
        n_rows += 1;
    }
    let decimal_comma = match over.decimal {
        Some(d) => d == ',',
        None => {
            detected.push("decimal");
            if separator == ',' {
                false
            } else {
                let (mut comma, mut point) = (0usize, 0usize);
                for v in cols.iter().flatten().flatten() {
                    if is_comma_decimal(v) {
                        comma += 1;
                    } else if is_point_decimal(v) {
                        point += 1;
                    }
                }
                comma > 0 && comma >= point
            }
        }
    };
    let dialect = Dialect {
        separator,
        quote,
        decimal_comma,
        encoding,
        bom,
        crlf,
        detected,
    };
    let columns = names
        .into_iter()
        .zip(cols)
        .map(|(n, v)| SourceColumn::plain(n, ColumnData::Text(v)))
        .collect();
    Ok(SourceTable {
        path: path.to_path_buf(),
        format: SourceFormat::Csv(dialect),
        columns,
        n_rows,
    })
}

/// Parses a number in a CSV cell: `3.5`, or `3,5` (also `1.234,5`) when the file uses a
/// decimal comma.
pub fn parse_number(s: &str, decimal_comma: bool) -> Option<f64> {
    let s = s.trim();
    let v = if decimal_comma && s.contains(',') {
        s.replace('.', "").replace(',', ".").parse::<f64>().ok()
    } else {
        s.parse::<f64>().ok()
    };
    v.filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> SourceTable {
        parse_csv(b, Path::new("x.csv"), &DialectOverrides::default()).unwrap()
    }

    fn dialect(t: &SourceTable) -> &Dialect {
        match &t.format {
            SourceFormat::Csv(d) => d,
            _ => panic!("a CSV"),
        }
    }

    fn text_of(t: &SourceTable, col: usize) -> Vec<Option<String>> {
        match &t.columns[col].data {
            ColumnData::Text(v) => v.clone(),
            ColumnData::Num(_) => panic!("text"),
        }
    }

    #[test]
    fn dutch_excel_semicolon_decimal_comma_windows_1252_crlf() {
        // "Zoë" in Windows-1252 is 5A 6F EB
        let b = b"nr;naam;score\r\n1;Zo\xeb;3,5\r\n2;\"A;B\";4\r\n";
        let t = parse(b);
        let d = dialect(&t);
        assert_eq!(d.separator, ';');
        assert!(d.decimal_comma);
        assert_eq!(d.encoding, "windows-1252");
        assert!(d.crlf);
        assert_eq!(t.n_rows, 2);
        assert_eq!(text_of(&t, 1), vec![Some("Zoë".into()), Some("A;B".into())]);
        assert_eq!(parse_number("3,5", d.decimal_comma), Some(3.5));
    }

    #[test]
    fn utf8_bom_tab_and_quotes() {
        let b = "\u{feff}id\tx\n\"P \"\"1\"\"\"\t1.5\nP2\t\n".as_bytes();
        let t = parse(b);
        let d = dialect(&t);
        assert!(d.bom);
        assert_eq!(d.separator, '\t');
        assert!(!d.decimal_comma);
        assert_eq!(t.columns[0].name, "id");
        assert_eq!(
            text_of(&t, 0),
            vec![Some("P \"1\"".into()), Some("P2".into())]
        );
        assert_eq!(text_of(&t, 1), vec![Some("1.5".into()), None]);
    }

    #[test]
    fn utf16_with_a_bom() {
        let text = "id;naam\r\n1;Zoë\r\n";
        let mut b = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            b.extend_from_slice(&u.to_le_bytes());
        }
        let t = parse(&b);
        let d = dialect(&t);
        assert_eq!(d.encoding, "UTF-16LE");
        assert!(d.bom);
        assert_eq!(d.separator, ';');
        assert_eq!(text_of(&t, 1), vec![Some("Zoë".into())]);
    }

    #[test]
    fn overrides_win_and_errors_are_located() {
        let over = DialectOverrides {
            separator: Some('|'),
            quote: Some('\''),
            decimal: Some(','),
            encoding: Some("utf-8".into()),
        };
        let t = parse_csv(b"a|b\n'x|y'|2,5\n", Path::new("x.csv"), &over).unwrap();
        assert_eq!(text_of(&t, 0), vec![Some("x|y".into())]);
        assert!(dialect(&t).detected.is_empty());
        let e = parse_csv(
            b"a,b\n1,2\n3,4,5\n",
            Path::new("x.csv"),
            &DialectOverrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 3 has 3 fields"), "{e}");
        let e = parse_csv(
            b"a,b\n\"1,2\n",
            Path::new("x.csv"),
            &DialectOverrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 2") && e.contains("never closed"), "{e}");
        let bad = DialectOverrides {
            encoding: Some("klingon".into()),
            ..DialectOverrides::default()
        };
        assert!(parse_csv(b"a\n1\n", Path::new("x.csv"), &bad).is_err());
    }

    #[test]
    fn numbers_with_either_decimal_mark() {
        assert_eq!(parse_number("1.234,5", true), Some(1234.5));
        assert_eq!(parse_number("2.5", true), Some(2.5));
        assert_eq!(parse_number("2.5", false), Some(2.5));
        assert_eq!(parse_number("2,5", false), None);
        assert_eq!(parse_number("inf", false), None);
    }
}
