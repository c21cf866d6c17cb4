//! Zeek's TSV logs (conn.log and the like) read as CSV, so every command that reads flow
//! records reads them too. A log is recognised by its first line, `#separator`; its
//! `#fields` line becomes the header (`id.orig_h` and the other dotted names as they are),
//! an unset field (`#unset_field`, `-`) becomes an empty cell (missing), a bool `T`/`F`
//! becomes `true`/`false`, other `#` lines are passed over. IoT-23's labelled logs separate
//! their last three columns (`tunnel_parents label detailed-label`) with spaces, not the
//! separator: a line with fewer fields than the header has its last field split on spaces.

use std::io::{BufRead, Read};

use anyhow::Result;

use crate::bail_input;

/// Whether a stream starts as a Zeek TSV log does.
pub fn is_zeek(head: &[u8]) -> bool {
    head.starts_with(b"#separator")
}

/// A Zeek TSV log as CSV text, line by line.
pub struct ZeekCsv<R: BufRead> {
    input: R,
    separator: u8,
    unset: String,
    /// The header's width, once `#fields` is read; which columns are bools (`#types`).
    fields: usize,
    bools: Vec<bool>,
    line_number: usize,
    line: Vec<u8>,
    out: Vec<u8>,
    at: usize,
}

impl<R: BufRead> ZeekCsv<R> {
    pub fn new(input: R) -> ZeekCsv<R> {
        ZeekCsv {
            input,
            separator: b'\t',
            unset: "-".into(),
            fields: 0,
            bools: Vec::new(),
            line_number: 0,
            line: Vec::new(),
            out: Vec::new(),
            at: 0,
        }
    }

    /// Reads input lines until one gives CSV text (or the input ends).
    fn next_line(&mut self) -> Result<bool> {
        loop {
            self.line.clear();
            if self.input.read_until(b'\n', &mut self.line)? == 0 {
                return Ok(false);
            }
            self.line_number += 1;
            let text = String::from_utf8_lossy(&self.line)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            if let Some(directive) = text.strip_prefix('#') {
                self.directive(directive)?;
                if directive.starts_with("fields") {
                    return Ok(true);
                }
                continue;
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
            let cells = self.split(&text);
            if cells.len() != self.fields {
                bail_input!(
                    "Zeek log line {}: expected {} fields (the #fields line's), found {}",
                    self.line_number,
                    self.fields,
                    cells.len()
                );
            }
            let cells = cells.into_iter().enumerate().map(|(i, c)| {
                if c == self.unset {
                    String::new()
                } else if self.bools.get(i).copied().unwrap_or(false) {
                    match c.as_str() {
                        "T" => "true".into(),
                        "F" => "false".into(),
                        _ => c,
                    }
                } else {
                    c
                }
            });
            self.write_record(cells.collect())?;
            return Ok(true);
        }
    }

    fn directive(&mut self, directive: &str) -> Result<()> {
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
                self.write_record(names)?;
            }
            "types" => self.bools = self.split(value).iter().map(|t| t == "bool").collect(),
            _ => {}
        }
        Ok(())
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
            cells.extend(
                last.split("   ")
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty()),
            );
        }
        cells
    }

    fn write_record(&mut self, cells: Vec<String>) -> Result<()> {
        let mut w = csv::Writer::from_writer(&mut self.out);
        w.write_record(&cells)?;
        w.flush()?;
        Ok(())
    }
}

impl<R: BufRead> Read for ZeekCsv<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.out.len() {
            self.out.clear();
            self.at = 0;
            let more = self
                .next_line()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            if !more {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
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
        ZeekCsv::new(IOT23.as_bytes())
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

    #[test]
    fn a_record_of_the_wrong_width_names_its_line() {
        let bad = "#separator \\x09\n#fields\ta\tb\n1\t2\t3\n";
        let mut out = String::new();
        let err = ZeekCsv::new(bad.as_bytes())
            .read_to_string(&mut out)
            .unwrap_err();
        assert!(
            err.to_string().contains("line 3: expected 2 fields"),
            "{err}"
        );
    }
}
