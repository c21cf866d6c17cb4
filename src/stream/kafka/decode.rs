//! A Kafka message's value as a flow record: a JSON object keyed by column name (what
//! `predict --format jsonl` and `flows --format jsonl` write), a Zeek JSON conn record, or one
//! CSV line whose header is known beforehand. What cannot be read is a short reason, which
//! becomes the message's error output: a consumer never stops on bad data.

use std::collections::HashMap;

use csv::ByteRecord;
use serde_json::Value;

use crate::data::records::json_cell;
use crate::data::zeek;

/// How each message's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// A JSON object of column: value; every column the model reads must be there.
    Jsonl,
    /// One CSV line, its columns named by `--columns` (else the model's input columns).
    Csv,
    /// Zeek's JSON log records: unset fields left out are missing cells, sets are joined.
    ZeekJson,
}

/// Reads message values as records whose fields are `names`, in order.
pub struct Decoder {
    format: InputFormat,
    names: Vec<String>,
    /// Per name: whether a JSON object must have it (the model's input columns).
    required: Vec<bool>,
    /// Each name's position.
    index: HashMap<String, usize>,
}

impl Decoder {
    pub fn new(format: InputFormat, names: Vec<String>, required: Vec<bool>) -> Decoder {
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Decoder {
            format,
            names,
            required,
            index,
        }
    }

    /// The fields every record has, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Fills `record` from a message's value, or says why it cannot.
    pub fn decode(&self, value: Option<&[u8]>, record: &mut ByteRecord) -> Result<(), String> {
        record.clear();
        let value = value.ok_or("the message has no value")?;
        match self.format {
            InputFormat::Csv => csv_line(value, record),
            InputFormat::Jsonl | InputFormat::ZeekJson => self.object(value, record),
        }
    }

    /// A JSON object's fields straight into `record`: its values are written as cells where
    /// their names are wanted (the rest skipped), with no map built in between (a third of a
    /// replica's time when it was).
    fn object(&self, value: &[u8], record: &mut ByteRecord) -> Result<(), String> {
        let mut cells = vec![None; self.names.len()];
        let fields = Fields {
            decoder: self,
            cells: &mut cells,
        };
        let mut de = serde_json::Deserializer::from_slice(value);
        serde::de::DeserializeSeed::deserialize(fields, &mut de)
            .and_then(|()| de.end())
            .map_err(|e| {
                let said = e.to_string();
                match said.starts_with("column '") {
                    true => said,
                    false => format!("expected a JSON object of column: value ({said})"),
                }
            })?;
        let zeek = self.format == InputFormat::ZeekJson;
        for ((name, &required), cell) in self.names.iter().zip(&self.required).zip(cells) {
            match cell {
                Some(c) => record.push_field(c.as_bytes()),
                None if required && !zeek => return Err(format!("missing column '{name}'")),
                None => record.push_field(b""),
            }
        }
        Ok(())
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

/// Deserializes one JSON object into the cells of the decoder's names.
struct Fields<'a> {
    decoder: &'a Decoder,
    cells: &'a mut [Option<String>],
}

impl<'de> serde::de::DeserializeSeed<'de> for Fields<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Fields<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object of column: value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let zeek = self.decoder.format == InputFormat::ZeekJson;
        while let Some(Key(name)) = map.next_key::<Key>()? {
            let Some(at) = self.decoder.position(&name) else {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            };
            let value: Value = map.next_value()?;
            let cell = match zeek {
                true => zeek::cell(value),
                false => json_cell(&value).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "column '{name}': expected a number, string, boolean or null, got {value}"
                    ))
                })?,
            };
            self.cells[at] = Some(cell);
        }
        Ok(())
    }
}

/// An object's key, borrowed from the message when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a column name")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_string().into()))
            }
        }
        d.deserialize_str(Visit)
    }
}

/// One CSV record, with or without a line break after it.
fn csv_line(value: &[u8], record: &mut ByteRecord) -> Result<(), String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(value);
    match reader.read_byte_record(record) {
        Ok(true) => {}
        Ok(false) => return Err("expected a CSV line, found an empty message".into()),
        Err(e) => return Err(format!("expected a CSV line ({e})")),
    }
    let mut rest = ByteRecord::new();
    match reader.read_byte_record(&mut rest) {
        Ok(false) => Ok(()),
        _ => Err("expected one CSV line, found more".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder(format: InputFormat) -> Decoder {
        let names = ["Flow ID", "Flow Duration", "Protocol"]
            .map(String::from)
            .to_vec();
        Decoder::new(format, names, vec![false, true, true])
    }

    fn fields(record: &ByteRecord) -> Vec<&str> {
        record
            .iter()
            .map(|f| std::str::from_utf8(f).unwrap())
            .collect()
    }

    #[test]
    fn a_json_object_is_read_in_the_decoders_column_order() {
        let d = decoder(InputFormat::Jsonl);
        let mut r = ByteRecord::new();
        let msg = br#"{"Protocol":6,"Flow Duration":1.5e3,"Other":[1],"Flow ID":"a-b"}"#;
        d.decode(Some(msg), &mut r).unwrap();
        assert_eq!(fields(&r), ["a-b", "1500.0", "6"]);
        let missing = d.decode(Some(br#"{"Protocol":6}"#), &mut r).unwrap_err();
        assert_eq!(missing, "missing column 'Flow Duration'");
        let list = d.decode(Some(br#"{"Protocol":[6],"Flow Duration":1}"#), &mut r);
        assert!(
            list.unwrap_err()
                .contains("column 'Protocol': expected a number")
        );
    }

    /// Poison messages: truncated JSON, a number out of range, garbage, no value.
    #[test]
    fn what_is_not_a_record_is_a_reason_not_a_failure() {
        let d = decoder(InputFormat::Jsonl);
        let mut r = ByteRecord::new();
        for bad in [
            &br#"{"Protocol":6,"Flow Dur"#[..],
            br#"{"Protocol":6,"Flow Duration":1e999999}"#,
            &[0xff; 4096][..],
            b"[1,2,3]",
        ] {
            let e = d.decode(Some(bad), &mut r).unwrap_err();
            assert!(e.starts_with("expected a JSON object"), "{e}");
        }
        assert_eq!(
            d.decode(None, &mut r).unwrap_err(),
            "the message has no value"
        );
    }

    #[test]
    fn zeek_json_leaves_unset_fields_empty_and_joins_sets() {
        let d = decoder(InputFormat::ZeekJson);
        let mut r = ByteRecord::new();
        d.decode(Some(br#"{"Protocol":["tcp","udp"]}"#), &mut r)
            .unwrap();
        assert_eq!(fields(&r), ["", "", "tcp,udp"]);
    }

    #[test]
    fn a_csv_message_is_exactly_one_line() {
        let d = decoder(InputFormat::Csv);
        let mut r = ByteRecord::new();
        d.decode(Some(b"\"a,b\",12,6\n"), &mut r).unwrap();
        assert_eq!(fields(&r), ["a,b", "12", "6"]);
        let two = d.decode(Some(b"a,1,6\nb,2,6\n"), &mut r).unwrap_err();
        assert_eq!(two, "expected one CSV line, found more");
        assert!(d.decode(Some(b""), &mut r).is_err());
    }
}
