//! Zeek's logs (conn.log and the like), TSV or JSON, read as CSV, so every command that reads
//! flow records reads them too.
//!
//! TSV: recognised by its first line, `#separator`; its `#fields` line becomes the header
//! (`id.orig_h` and the other dotted names as they are), an unset field (`#unset_field`, `-`)
//! an empty cell (missing), a bool `T`/`F` `true`/`false`; other `#` lines are passed over.
//! IoT-23's labelled logs separate their last three columns (`tunnel_parents label
//! detailed-label`) with spaces, not the separator: a line with fewer fields than the header
//! has its last field split on those spaces.
//!
//! JSON (one object per line, as Zeek's `LogAscii::use_json` writes): recognised by a first
//! `{`. Zeek leaves unset fields out of a line, so the header is the union of the keys of the
//! first [`HEADER_LINES`] lines (sorted); a missing key or `null` is an empty cell, a list (a
//! Zeek set) its items joined by commas; a later line with a key outside the header is refused.

use std::collections::VecDeque;
use std::io::{BufRead, Read};

use anyhow::Result;
use serde_json::{Map, Value};

use crate::bail_input;
use crate::data::records::json_cell;

/// Whether a stream starts as a Zeek TSV log does.
pub fn is_zeek(head: &[u8]) -> bool {
    head.starts_with(b"#separator")
}

/// Whether a stream starts as a JSON log does.
pub fn is_json_lines(head: &[u8]) -> bool {
    head.first() == Some(&b'{')
}

/// A source of records, the header first, that [`AsCsv`] turns into CSV text.
pub trait Records {
    fn next_record(&mut self) -> Result<Option<Vec<String>>>;
}

/// Records as CSV text, a record at a time.
pub struct AsCsv<S: Records> {
    source: S,
    out: Vec<u8>,
    at: usize,
}

impl<S: Records> AsCsv<S> {
    pub fn new(source: S) -> AsCsv<S> {
        AsCsv {
            source,
            out: Vec::new(),
            at: 0,
        }
    }
}

impl<S: Records> Read for AsCsv<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.out.len() {
            let record = self
                .source
                .next_record()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            let Some(record) = record else {
                return Ok(0);
            };
            self.out.clear();
            self.at = 0;
            let mut w = csv::Writer::from_writer(&mut self.out);
            w.write_record(&record)?;
            w.flush()?;
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A Zeek TSV log's records.
pub struct ZeekTsv<R: BufRead> {
    input: R,
    separator: u8,
    unset: String,
    /// The header's width, once `#fields` is read; which columns are bools (`#types`).
    fields: usize,
    bools: Vec<bool>,
    line_number: usize,
}

impl<R: BufRead> ZeekTsv<R> {
    pub fn new(input: R) -> ZeekTsv<R> {
        ZeekTsv {
            input,
            separator: b'\t',
            unset: "-".into(),
            fields: 0,
            bools: Vec::new(),
            line_number: 0,
        }
    }

    /// A `#key value` line; the `#fields` line's names.
    fn directive(&mut self, directive: &str) -> Option<Vec<String>> {
        let (key, value) = directive.split_once([' ', '\t']).unwrap_or((directive, ""));
        match key {
            "separator" => {
                let v = value.trim();
                self.separator = match v.strip_prefix("\\x").map(|h| u8::from_str_radix(h, 16)) {
                    Some(Ok(b)) => b,
                    _ => v.bytes().next().unwrap_or(b'\t'),
                };
            }
            "unset_field" => self.unset = value.to_string(),
            "fields" => {
                let names = self.split(value);
                self.fields = names.len();
                return Some(names);
            }
            "types" => self.bools = self.split(value).iter().map(|t| t == "bool").collect(),
            _ => {}
        }
        None
    }

    /// Fields on the separator; IoT-23's space-separated tail split when the line is short.
    fn split(&self, text: &str) -> Vec<String> {
        let mut cells: Vec<String> = text
            .split(self.separator as char)
            .map(str::to_string)
            .collect();
        let short = self.fields == 0 || cells.len() < self.fields;
        if short && cells.last().is_some_and(|c| c.contains("   ")) {
            let last = cells.pop().expect("a last field");
            let parts = last.split("   ").map(|c| c.trim().to_string());
            cells.extend(parts.filter(|c| !c.is_empty()));
        }
        cells
    }

    /// A record's cells as CSV cells: unset empty, bools spelled out.
    fn cells(&self, text: &str) -> Result<Vec<String>> {
        let cells = self.split(text);
        if cells.len() != self.fields {
            bail_input!(
                "Zeek log line {}: expected {} fields (the #fields line's), found {}",
                self.line_number,
                self.fields,
                cells.len()
            );
        }
        let cell = |(i, c): (usize, String)| {
            if c == self.unset {
                String::new()
            } else if self.bools.get(i) == Some(&true) && (c == "T" || c == "F") {
                (c == "T").to_string()
            } else {
                c
            }
        };
        Ok(cells.into_iter().enumerate().map(cell).collect())
    }
}

impl<R: BufRead> Records for ZeekTsv<R> {
    fn next_record(&mut self) -> Result<Option<Vec<String>>> {
        let mut line = Vec::new();
        loop {
            line.clear();
            if self.input.read_until(b'\n', &mut line)? == 0 {
                return Ok(None);
            }
            self.line_number += 1;
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            if let Some(directive) = text.strip_prefix('#') {
                match self.directive(directive) {
                    Some(names) => return Ok(Some(names)),
                    None => continue,
                }
            }
            if text.is_empty() {
                continue;
            }
            if self.fields == 0 {
                bail_input!(
                    "Zeek log line {}: a record before the #fields line",
                    self.line_number
                );
            }
            return self.cells(text).map(Some);
        }
    }
}

/// The lines whose keys make a JSON log's header.
pub const HEADER_LINES: usize = 1000;

/// A JSON log's records.
pub struct JsonLines<R: BufRead> {
    input: R,
    header: Option<Vec<String>>,
    pending: VecDeque<(usize, Map<String, Value>)>,
    line_number: usize,
}

impl<R: BufRead> JsonLines<R> {
    pub fn new(input: R) -> JsonLines<R> {
        JsonLines {
            input,
            header: None,
            pending: VecDeque::new(),
            line_number: 0,
        }
    }

    /// The next object and its line number; `None` at the end.
    fn object(&mut self) -> Result<Option<(usize, Map<String, Value>)>> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.input.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            self.line_number += 1;
            if line.trim().is_empty() {
                continue;
            }
            return match serde_json::from_str(&line) {
                Ok(object) => Ok(Some((self.line_number, object))),
                Err(e) => bail_input!(
                    "JSON log line {}: expected one object ({e})",
                    self.line_number
                ),
            };
        }
    }
}

impl<R: BufRead> Records for JsonLines<R> {
    fn next_record(&mut self) -> Result<Option<Vec<String>>> {
        if self.header.is_none() {
            while self.pending.len() < HEADER_LINES {
                match self.object()? {
                    Some(o) => self.pending.push_back(o),
                    None => break,
                }
            }
            let mut keys: Vec<String> = self
                .pending
                .iter()
                .flat_map(|(_, o)| o.keys().cloned())
                .collect();
            keys.sort();
            keys.dedup();
            self.header = Some(keys.clone());
            return Ok(Some(keys));
        }
        let next = match self.pending.pop_front() {
            Some(o) => Some(o),
            None => self.object()?,
        };
        let Some((line, mut object)) = next else {
            return Ok(None);
        };
        let header = self.header.as_ref().expect("the header comes first");
        let cells = header
            .iter()
            .map(|k| object.remove(k).map_or(String::new(), cell));
        let cells: Vec<String> = cells.collect();
        if let Some(extra) = object.keys().next() {
            bail_input!(
                "JSON log line {line}: field '{extra}' is not among the fields of the first \
                 {HEADER_LINES} lines"
            );
        }
        Ok(Some(cells))
    }
}

/// A JSON value as a CSV cell: a Zeek set's items joined by commas.
pub fn cell(v: Value) -> String {
    match v {
        Value::Array(items) => items.into_iter().map(cell).collect::<Vec<_>>().join(","),
        other => json_cell(&other).unwrap_or_else(|| other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IoT-23's layout: a conn.log with its last three columns joined by spaces.
    const IOT23: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\tlocal_orig\ttunnel_parents   label   detailed-label\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tbool\tset[string]   string   string\n1525879831.015811\tCUmrqr4svHuSXJy5z7\t192.168.100.103\t51524\t65.127.233.163\t23\ttcp\t-\t2.999051\tT\t(empty)   Malicious   PartOfAHorizontalPortScan\n1525879832.1\tC2\t192.168.100.103\t51525\t8.8.8.8\t53\tudp\tdns\t0.01\tF\t(empty)   Benign   -\n#close\t2019-01-01-00-00-00\n";

    #[test]
    fn an_iot23_conn_log_reads_as_csv_with_unset_fields_empty() {
        assert!(is_zeek(IOT23.as_bytes()));
        let mut csv = String::new();
        AsCsv::new(ZeekTsv::new(IOT23.as_bytes()))
            .read_to_string(&mut csv)
            .unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "ts,uid,id.orig_h,id.orig_p,id.resp_h,id.resp_p,proto,service,duration,local_orig,tunnel_parents,label,detailed-label"
        );
        assert_eq!(
            lines[1],
            "1525879831.015811,CUmrqr4svHuSXJy5z7,192.168.100.103,51524,65.127.233.163,23,tcp,,2.999051,true,(empty),Malicious,PartOfAHorizontalPortScan"
        );
        assert!(lines[2].ends_with(",dns,0.01,false,(empty),Benign,"));
        assert_eq!(lines.len(), 3);
    }

    /// Zeek's JSON: unset fields left out of a line are empty cells; sets are joined.
    #[test]
    fn a_json_log_reads_as_csv_over_the_union_of_its_keys() {
        let log = "{\"ts\":1.5,\"id.orig_h\":\"10.0.0.1\",\"proto\":\"tcp\",\"duration\":0.25,\"local_orig\":true}\n{\"ts\":2.5,\"id.orig_h\":\"10.0.0.2\",\"proto\":\"udp\",\"tunnel_parents\":[\"a\",\"b\"]}\n";
        assert!(is_json_lines(log.as_bytes()));
        let mut csv = String::new();
        AsCsv::new(JsonLines::new(log.as_bytes()))
            .read_to_string(&mut csv)
            .unwrap();
        assert_eq!(
            csv,
            "duration,id.orig_h,local_orig,proto,ts,tunnel_parents\n0.25,10.0.0.1,true,tcp,1.5,\n,10.0.0.2,,udp,2.5,\"a,b\"\n"
        );
        let mut late = String::new();
        for i in 0..HEADER_LINES {
            late += &format!("{{\"ts\":{i}}}\n");
        }
        late += "{\"ts\":1,\"new\":2}\n";
        let mut out = String::new();
        let err = AsCsv::new(JsonLines::new(late.as_bytes())).read_to_string(&mut out);
        let err = err.unwrap_err().to_string();
        assert!(err.contains("line 1001: field 'new'"), "{err}");
    }

    #[test]
    fn a_record_of_the_wrong_width_names_its_line() {
        let bad = "#separator \\x09\n#fields\ta\tb\n1\t2\t3\n";
        let mut out = String::new();
        let err = AsCsv::new(ZeekTsv::new(bad.as_bytes()))
            .read_to_string(&mut out)
            .unwrap_err();
        assert!(
            err.to_string().contains("line 3: expected 2 fields"),
            "{err}"
        );
    }
}
