//! Batch codes: a CSV of `name,phone,text` rows becomes a ZIP with a code per good row
//! (`codes/<name>.png|svg`), `links.csv` (the link of each), and `errors.csv` naming every
//! bad row by its line number. Bad rows never stop the good ones.

use std::collections::HashSet;
use std::io::{Cursor, Write};

use cornetta_shared::{PhoneNumber, Region, WaLink};

use super::options::{Format, RenderOptions};

/// Most rows one batch takes (a print run's worth; larger jobs split the file).
pub const MAX_ROWS: usize = 2000;
/// Largest CSV accepted, in bytes.
pub const MAX_CSV_BYTES: usize = 1024 * 1024;

/// A row that could not be made into a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the uploaded file.
    pub line: u64,
    pub message: String,
}

/// The whole batch was unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("the CSV is {0} bytes; the most a batch takes is {MAX_CSV_BYTES} bytes: split the file")]
    TooLarge(usize),
    #[error("the CSV has more than {MAX_ROWS} rows: split the file")]
    TooManyRows,
    #[error("the CSV has no rows; expected lines of name,phone,text (a header line is optional)")]
    Empty,
    #[error("no row could be made into a code: {}", describe(.0))]
    NoGoodRows(Vec<RowError>),
    #[error("writing the ZIP failed: {0}")]
    Zip(String),
}

fn describe(errors: &[RowError]) -> String {
    let shown: Vec<String> = errors.iter().take(5).map(|e| format!("line {}: {}", e.line, e.message)).collect();
    let more = errors.len().saturating_sub(5);
    if more > 0 { format!("{} (and {more} more)", shown.join("; ")) } else { shown.join("; ") }
}

/// A finished batch.
#[derive(Debug, Clone)]
pub struct BatchOutput {
    pub zip: Vec<u8>,
    pub produced: usize,
    pub errors: Vec<RowError>,
}

/// A good row.
#[derive(Debug, Clone)]
pub struct BatchRow {
    pub line: u64,
    pub name: String,
    pub link: WaLink,
}

/// Reads the rows: good ones as links, bad ones as errors with their line.
pub fn read_rows(csv_bytes: &[u8], region: Option<Region>) -> Result<(Vec<BatchRow>, Vec<RowError>), BatchError> {
    if csv_bytes.len() > MAX_CSV_BYTES {
        return Err(BatchError::TooLarge(csv_bytes.len()));
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(csv_bytes);
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen_any = false;
    for (index, record) in reader.records().enumerate() {
        let record = match record {
            Ok(r) => r,
            Err(err) => {
                let line = err.position().map_or(index as u64 + 1, |p| p.line());
                errors.push(RowError { line, message: format!("not readable as CSV: {err}") });
                continue;
            }
        };
        let line = record.position().map_or(index as u64 + 1, |p| p.line());
        if index == 0 && record.get(0).is_some_and(|f| f.eq_ignore_ascii_case("name")) && record.get(1).is_some_and(|f| f.eq_ignore_ascii_case("phone")) {
            continue; // the header line
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        seen_any = true;
        if rows.len() + errors.len() >= MAX_ROWS {
            return Err(BatchError::TooManyRows);
        }
        if !(2..=3).contains(&record.len()) {
            errors.push(RowError { line, message: format!("has {} fields; expected name,phone,text", record.len()) });
            continue;
        }
        let name = record.get(0).unwrap_or("");
        let phone = record.get(1).unwrap_or("");
        let text = record.get(2).filter(|t| !t.is_empty());
        if name.is_empty() {
            errors.push(RowError { line, message: "the name is empty; it names the file in the ZIP".into() });
            continue;
        }
        if name.chars().count() > 100 {
            errors.push(RowError { line, message: "the name is longer than 100 characters".into() });
            continue;
        }
        let phone = match PhoneNumber::parse(phone, region) {
            Ok(p) => p,
            Err(e) => {
                errors.push(RowError { line, message: format!("phone: {e}") });
                continue;
            }
        };
        match WaLink::new(phone, text) {
            Ok(link) => rows.push(BatchRow { line, name: name.to_owned(), link }),
            Err(e) => errors.push(RowError { line, message: format!("text: {e}") }),
        }
    }
    if !seen_any && errors.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok((rows, errors))
}

/// A file-system-safe, readable name: letters and digits kept (any script), the rest
/// folded to single dashes, at most 60 characters.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.chars().count() >= 60 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "code".to_owned() } else { out }
}

/// Makes the ZIP: each good row drawn in every format of `formats` with `options`.
pub fn run(csv_bytes: &[u8], region: Option<Region>, options: &RenderOptions, formats: &[Format]) -> Result<BatchOutput, BatchError> {
    let (rows, mut errors) = read_rows(csv_bytes, region)?;
    let zip_err = |e: zip::result::ZipError| BatchError::Zip(e.to_string());
    let io_err = |e: std::io::Error| BatchError::Zip(e.to_string());
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    // PNGs are already deflated inside.
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut links = csv::Writer::from_writer(Vec::new());
    links.write_record(["line", "name", "phone", "link", "files"]).map_err(|e| BatchError::Zip(e.to_string()))?;
    let mut used = HashSet::new();
    let mut produced = 0;
    for row in rows {
        let base = slug(&row.name);
        let mut unique = base.clone();
        let mut n = 2;
        while !used.insert(unique.clone()) {
            unique = format!("{base}-{n}");
            n += 1;
        }
        let mut files = Vec::new();
        let mut failed = None;
        let mut drawn = Vec::new();
        for format in formats {
            let options = RenderOptions { format: *format, ..*options };
            match options.render(row.link.url()) {
                Ok(r) => drawn.push((format!("codes/{unique}.{}", format.extension()), *format, r.bytes)),
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(message) = failed {
            errors.push(RowError { line: row.line, message });
            continue;
        }
        for (path, format, bytes) in drawn {
            zip.start_file(path.as_str(), if format == Format::Png { stored } else { deflated }).map_err(zip_err)?;
            zip.write_all(&bytes).map_err(io_err)?;
            files.push(path);
        }
        links
            .write_record([row.line.to_string().as_str(), row.name.as_str(), row.link.phone().as_str(), row.link.url(), files.join(" ").as_str()])
            .map_err(|e| BatchError::Zip(e.to_string()))?;
        produced += 1;
    }
    if produced == 0 {
        errors.sort_by_key(|e| e.line);
        return Err(BatchError::NoGoodRows(errors));
    }
    zip.start_file("links.csv", deflated).map_err(zip_err)?;
    zip.write_all(&links.into_inner().map_err(|e| BatchError::Zip(e.to_string()))?).map_err(io_err)?;
    errors.sort_by_key(|e| e.line);
    if !errors.is_empty() {
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(["line", "error"]).map_err(|e| BatchError::Zip(e.to_string()))?;
        for e in &errors {
            out.write_record([e.line.to_string().as_str(), e.message.as_str()]).map_err(|e| BatchError::Zip(e.to_string()))?;
        }
        zip.start_file("errors.csv", deflated).map_err(zip_err)?;
        zip.write_all(&out.into_inner().map_err(|e| BatchError::Zip(e.to_string()))?).map_err(io_err)?;
    }
    let zip = zip.finish().map_err(zip_err)?.into_inner();
    Ok(BatchOutput { zip, produced, errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rows_are_reported_by_line_and_good_rows_still_read() {
        let csv = "name,phone,text\nPoster A,+39 333 123 4567,Hi from A\n,+393331234567,no name\nPoster B,not a phone,Hi\nPoster C,+1 650 253 0000\n\"Poster, D\",+393331234567,\"Quoted, with comma\"\na,b,c,d\n";
        let (rows, errors) = read_rows(csv.as_bytes(), None).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Poster A", "Poster C", "Poster, D"]);
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 7]);
        assert!(errors[0].message.contains("name"), "{:?}", errors[0]);
        assert!(errors[1].message.starts_with("phone:"), "{:?}", errors[1]);
        assert!(errors[2].message.contains("4 fields"), "{:?}", errors[2]);
    }

    #[test]
    fn slugs_are_safe_file_names() {
        assert_eq!(slug("Summer poster / 2027"), "summer-poster-2027");
        assert_eq!(slug("../../etc/passwd"), "etc-passwd");
        assert_eq!(slug("Caffè Nero"), "caffè-nero");
        assert_eq!(slug("!!!"), "code");
    }
}
