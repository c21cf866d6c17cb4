//! The event files TensorBoard reads: TFRecord framing with masked CRC-32C checksums.

use crate::util::Sandbox;

fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Splits an event file into its records, checking both checksums of each.
fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(len_crc, masked_crc(len_bytes), "length CRC at byte {at}");
        let data = &bytes[at + 12..at + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(data_crc, masked_crc(data), "data CRC at byte {at}");
        out.push(data.to_vec());
        at += 16 + len;
    }
    out
}

pub fn tags_in(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.starts_with("events.out.tfevents.") {
            continue;
        }
        for rec in records(&std::fs::read(&path).unwrap()) {
            found.push(String::from_utf8_lossy(&rec).into_owned());
        }
    }
    found
}

#[test]
fn train_and_test_write_valid_event_files_with_the_expected_tags() {
    let s = Sandbox::new();
    s.sample("d.csv", 500, 6);
    s.train("d.csv", &[]).ok();
    s.run(&["test", "--checkpoint", "checkpoints/best.mpk"])
        .ok();
    let records = tags_in(&s.path("runs/t"));
    assert!(
        records[0].contains("brain.Event:2"),
        "the first record is the file version"
    );
    for tag in [
        "Train/BatchLoss",
        "Loss/Train",
        "Loss/Validation",
        "LearningRate",
        "Best/ValidationLoss",
        "Metrics/Accuracy",
        "Metrics/Precision",
        "Metrics/Recall",
        "Metrics/F1_Score",
        "Metrics/AUC",
    ] {
        assert!(records.iter().any(|r| r.contains(tag)), "no {tag} scalar");
    }
    // One Loss/Train per epoch; the text log has one line per epoch too.
    assert_eq!(
        records.iter().filter(|r| r.contains("Loss/Train")).count(),
        4
    );
    let log = std::fs::read_to_string(s.path("logs/t.log")).unwrap();
    assert_eq!(log.lines().filter(|l| l.starts_with("epoch ")).count(), 4);
}
