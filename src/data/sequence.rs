//! Sequence data: flows put in order (per group), split in contiguous blocks, and cut into
//! windows of consecutive flows that never cross a split or a group boundary. A window is
//! built from the encoded flows when a batch needs it, never stored as a copy of the data.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::preprocess::Preprocessor;
use super::read::{Column, ColumnData, Table};
use super::{Dataset, Labeled, Prepared, encode};
use crate::bail_input;
use crate::config::{Config, DataFormat, SequenceConfig, WindowLabel};

/// Windows over encoded flows: row `w` of a dataset is the `length` flows ending at
/// `ends[w]`, as channels × time.
#[derive(Debug, Clone)]
pub struct Windows {
    /// Encoded flows in sequence order, `channels` values each.
    pub flows: Arc<Vec<f32>>,
    pub channels: usize,
    pub length: usize,
    /// Per window: the position of its last flow in `flows`.
    pub ends: Vec<usize>,
}

impl Windows {
    /// Appends window `w`, channel by channel (`values[c * length + t]`).
    pub fn push(&self, w: usize, out: &mut Vec<f32>) {
        let (c_n, l) = (self.channels, self.length);
        let first = self.ends[w] + 1 - l;
        let flows = &self.flows[first * c_n..(first + l) * c_n];
        for c in 0..c_n {
            out.extend((0..l).map(|t| flows[t * c_n + c]));
        }
    }
}

/// Which block of its sequence a flow falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Train,
    Validation,
    Test,
}

/// The `order_by` and `group_by` values of each row of a table (taken out of its features).
pub struct Keys {
    order: Option<Vec<f64>>,
    group: Option<Vec<u32>>,
}

impl Keys {
    /// The config's key columns, in the order `Preprocessor::keys` stores them.
    pub fn columns(cfg: &SequenceConfig) -> Vec<String> {
        [&cfg.order_by, &cfg.group_by]
            .into_iter()
            .flatten()
            .map(|c| c.trim().to_string())
            .collect()
    }

    /// Removes the key columns from `table` (they order and group flows; they are not
    /// features) and reads them.
    pub fn take(table: &mut Table, cfg: &SequenceConfig) -> Result<Keys> {
        let mut take = |key: &str, name: &Option<String>| -> Result<Option<Column>> {
            let Some(name) = name.as_deref().map(str::trim) else {
                return Ok(None);
            };
            let Some(at) = table.columns.iter().position(|c| c.name == name) else {
                bail_input!("sequence.{key}: no column '{name}' in the file");
            };
            Ok(Some(table.columns.remove(at)))
        };
        let order = take("order_by", &cfg.order_by)?;
        let group = take("group_by", &cfg.group_by)?;
        let order = match order {
            Some(col) => Some(order_values(&col, &table.source_rows)?),
            None => None,
        };
        let group = group.map(|col| match col.data {
            ColumnData::Categorical(d) => d.codes,
            ColumnData::Numeric(v) | ColumnData::Boolean(v) => {
                let mut codes = HashMap::new();
                v.iter()
                    .map(|x| {
                        let n = codes.len() as u32;
                        *codes.entry(x.to_bits()).or_insert(n)
                    })
                    .collect()
            }
        });
        Ok(Keys { order, group })
    }
}

/// The `order_by` cells as numbers: plain numbers, or date-times as seconds.
fn order_values(col: &Column, source_rows: &[usize]) -> Result<Vec<f64>> {
    let ColumnData::Categorical(d) = &col.data else {
        unreachable!("key columns are read as text")
    };
    let parsed: Vec<Option<f64>> = d.values.iter().map(|v| parse_time(v)).collect();
    d.codes
        .iter()
        .enumerate()
        .map(|(r, &c)| match parsed[c as usize] {
            Some(t) => Ok(t),
            None => bail_input!(
                "sequence.order_by: row {} of column '{}' holds '{}', expected a number or a \
                 date-time such as 2017-07-03 08:55:58 or 3/7/2017 8:55:58",
                source_rows[r] + 1,
                col.name,
                d.values[c as usize]
            ),
        })
        .collect()
}

/// A number, or a date-time in seconds since 1970: ISO 8601 (`2017-07-03 08:55:58.5`,
/// `2017-07-03T08:55:58Z`) or day-first with slashes as CICFlowMeter writes it
/// (`3/7/2017 8:55:58`, optionally with AM/PM).
pub fn parse_time(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Ok(v) = text.parse::<f64>() {
        return v.is_finite().then_some(v);
    }
    let (date, time) = match text.split_once([' ', 'T']) {
        Some((d, t)) => (d, t.trim()),
        None => (text, ""),
    };
    let parts: Vec<&str> = date.split(['-', '/']).collect();
    let num = |s: &str| s.parse::<i64>().ok();
    let (y, m, d) = match parts[..] {
        [y, m, d] if date.contains('-') => (num(y)?, num(m)?, num(d)?),
        [d, m, y] if date.contains('/') => (num(y)?, num(m)?, num(d)?),
        _ => return None,
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let (time, pm) = match time.trim_end_matches('Z').rsplit_once(' ') {
        Some((t, "PM")) => (t, Some(true)),
        Some((t, "AM")) => (t, Some(false)),
        _ => (time.trim_end_matches('Z'), None),
    };
    let mut hms = time.split(':');
    let mut field = |max: f64| -> Option<f64> {
        match hms.next() {
            None | Some("") => Some(0.0),
            Some(s) => s.parse::<f64>().ok().filter(|v| (0.0..max).contains(v)),
        }
    };
    let (mut h, min, s) = (field(24.0)?, field(60.0)?, field(61.0)?);
    if let Some(pm) = pm {
        h = h % 12.0 + if pm { 12.0 } else { 0.0 };
    }
    Some(crate::clock::days_from_civil(y, m, d) as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

/// A table's rows in sequence order: each group's rows by `order_by` (ties and no `order_by`:
/// file order), groups in order of first appearance.
#[derive(Clone)]
pub struct Layout {
    /// Table rows in sequence order.
    pub order: Vec<usize>,
    /// Each group's positions in `order`.
    pub sequences: Vec<Range<usize>>,
    /// What splits and folds cut in contiguous blocks: each group (an .npy file: all its
    /// windows, in file order).
    pub blocks: Vec<Range<usize>>,
}

impl Layout {
    pub fn of(keys: &Keys, rows: usize) -> Layout {
        let group = |r: usize| keys.group.as_ref().map_or(0, |g| g[r]);
        let mut first_seen = HashMap::new();
        for r in 0..rows {
            let n = first_seen.len();
            first_seen.entry(group(r)).or_insert(n);
        }
        let time = |r: usize| keys.order.as_ref().map_or(0.0, |o| o[r]);
        let mut order: Vec<usize> = (0..rows).collect();
        order.sort_by(|&a, &b| {
            (first_seen[&group(a)].cmp(&first_seen[&group(b)]))
                .then(time(a).total_cmp(&time(b)))
                .then(a.cmp(&b))
        });
        let mut sequences: Vec<Range<usize>> = Vec::new();
        for (i, &r) in order.iter().enumerate() {
            match sequences.last_mut() {
                Some(s) if group(order[s.start]) == group(r) => s.end = i + 1,
                _ => sequences.push(i..i + 1),
            }
        }
        let blocks = sequences.clone();
        Layout {
            order,
            sequences,
            blocks,
        }
    }

    /// Each sequence cut in contiguous blocks along its order: the first flows for training,
    /// then `val` of them for validation, then the last `test` for testing.
    pub fn blocked(&self, test: f64, val: f64) -> Vec<Part> {
        let mut parts = vec![Part::Train; self.order.len()];
        for s in &self.blocks {
            let n = s.len();
            let n_test = (n as f64 * test).round() as usize;
            let n_val = (n as f64 * val).round() as usize;
            let val_start = s.end - n_test.min(n) - n_val.min(n - n_test.min(n));
            parts[val_start..s.end - n_test.min(n)].fill(Part::Validation);
            parts[s.end - n_test.min(n)..s.end].fill(Part::Test);
        }
        parts
    }

    /// Blocked cross-validation folds over the flows before each sequence's test block:
    /// each sequence's share cut in `k` contiguous blocks, fold `f` validating on block `f`
    /// of every sequence. The folds' table rows, and the test block's.
    pub fn folds(&self, test: f64, k: usize) -> (Vec<Vec<usize>>, Vec<usize>) {
        let parts = self.blocked(test, 0.0);
        let mut folds = vec![Vec::new(); k];
        for s in &self.blocks {
            let pool: Vec<usize> = s.clone().filter(|&i| parts[i] == Part::Train).collect();
            for (f, fold) in folds.iter_mut().enumerate() {
                let n = pool.len();
                fold.extend(
                    pool[f * n / k..(f + 1) * n / k]
                        .iter()
                        .map(|&i| self.order[i]),
                );
            }
        }
        folds.iter_mut().for_each(|f| f.sort_unstable());
        (folds, self.rows(&parts, Part::Test))
    }

    /// Each flow's part when `train` and `val` name table rows (any other row: test).
    pub fn parts_of(&self, train: &[usize], val: &[usize]) -> Vec<Part> {
        let mut by_row = vec![Part::Test; self.order.len()];
        train.iter().for_each(|&r| by_row[r] = Part::Train);
        val.iter().for_each(|&r| by_row[r] = Part::Validation);
        self.order.iter().map(|&r| by_row[r]).collect()
    }

    /// The ends of `part`'s windows: in each run of consecutive flows of one sequence in
    /// that part, every `stride`-th position from the `length`-th flow on.
    pub fn window_ends(
        &self,
        parts: &[Part],
        part: Part,
        length: usize,
        stride: usize,
    ) -> Vec<usize> {
        let mut ends = Vec::new();
        for s in &self.sequences {
            let mut run_start = s.start;
            for i in s.clone() {
                if parts[i] != part {
                    run_start = i + 1;
                } else if i + 1 >= run_start + length
                    && (i + 1 - run_start - length).is_multiple_of(stride)
                {
                    ends.push(i);
                }
            }
        }
        ends
    }

    /// The table rows of `part`, in table order.
    pub fn rows(&self, parts: &[Part], part: Part) -> Vec<usize> {
        let mut rows: Vec<usize> = (0..parts.len())
            .filter(|&i| parts[i] == part)
            .map(|i| self.order[i])
            .collect();
        rows.sort_unstable();
        rows
    }
}

/// A window's label and class from its flows' (`y` 0/1, `class` for multiclass).
pub fn window_label(y: &[f32], class: &[u32], rule: WindowLabel) -> (f32, Option<u32>) {
    let last = y.len() - 1;
    let pick = match rule {
        WindowLabel::Last => last,
        WindowLabel::Any => y.iter().rposition(|&v| v == 1.0).unwrap_or(last),
        WindowLabel::Majority => {
            // Counted by class (multiclass) or by label; ties go to the later flow's.
            let key = |i: usize| class.get(i).copied().unwrap_or(y[i] as u32);
            let mut counts: HashMap<u32, usize> = HashMap::new();
            (0..y.len()).for_each(|i| *counts.entry(key(i)).or_insert(0) += 1);
            // `max_by_key` keeps the last of equal maxima: the later flow.
            (0..y.len())
                .max_by_key(|&i| counts[&key(i)])
                .expect("a window has flows")
        }
    };
    (y[pick], class.get(pick).copied())
}

/// Encoded flows in sequence order, which the windows of every part share.
pub struct Sequenced {
    flows: Arc<Vec<f32>>,
    /// Each flow's label and (multiclass) class.
    y: Vec<f32>,
    class: Vec<u32>,
    channels: usize,
    pub layout: Layout,
    length: usize,
}

impl Sequenced {
    /// Encodes every flow of `data` in `layout`'s order.
    pub fn encode(
        pre: &Preprocessor,
        data: &Labeled,
        layout: Layout,
        length: usize,
        notices: &mut Vec<String>,
    ) -> Result<Sequenced> {
        let flows = encode(pre, data, &layout.order, notices)?;
        Ok(Sequenced {
            flows: Arc::new(flows.x),
            y: flows.y,
            class: flows.class,
            channels: flows.n_features,
            layout,
            length,
        })
    }

    /// The windows ending at `ends`, labelled by `rule`, as a dataset.
    pub fn windows(&self, ends: Vec<usize>, rule: WindowLabel) -> Dataset {
        let l = self.length;
        let multiclass = !self.class.is_empty();
        let (mut y, mut class) = (Vec::with_capacity(ends.len()), Vec::new());
        for &e in &ends {
            let span = e + 1 - l..e + 1;
            let classes = if multiclass {
                &self.class[span.clone()]
            } else {
                &[][..]
            };
            let (label, c) = window_label(&self.y[span], classes, rule);
            y.push(label);
            class.extend(c);
        }
        let channels = self.channels;
        Dataset {
            x: Vec::new(),
            y,
            n_features: channels * l,
            class,
            unseen: Default::default(),
            windows: Some(Windows {
                flows: Arc::clone(&self.flows),
                channels,
                length: l,
                ends,
            }),
        }
    }
}

/// Reads `path` for a sequence run: the labelled table without its key columns, and the
/// table's rows in sequence order. With `pre`, only its columns (and keys).
pub fn read(path: &Path, config: &Config, pre: Option<&Preprocessor>) -> Result<(Labeled, Layout)> {
    let task = if pre.is_some() {
        crate::config::Task::Binary
    } else {
        config.task
    };
    if config.data.format == DataFormat::Npy {
        return read_npy(path, config, (task, pre));
    }
    let keys = Keys::columns(&config.sequence);
    let mut data = super::read_keyed(path, &config.data, (task, pre), false, &keys)?;
    let keys = Keys::take(&mut data.table, &config.sequence)
        .with_context(|| format!("reading {}", path.display()))?;
    let layout = Layout::of(&keys, data.y.len());
    Ok((data, layout))
}

/// An .npy file of windows: each window a sequence of its own, split and folded in file
/// order.
fn read_npy(
    path: &Path,
    config: &Config,
    (task, pre): (crate::config::Task, Option<&Preprocessor>),
) -> Result<(Labeled, Layout)> {
    let (table, l) = super::npy::read_windows(path, &config.data)?;
    if l != config.sequence.length {
        bail_input!(
            "{}: windows of {l} time steps, but sequence.length is {}",
            path.display(),
            config.sequence.length
        );
    }
    let n = table.n_rows();
    let data = super::label_table(table, &config.data, (task, pre))
        .with_context(|| format!("reading {}", path.display()))?;
    if data.y.len() != n {
        bail_input!(
            "{}: missing values would drop time steps from windows; use data.missing: \
             impute_median",
            path.display()
        );
    }
    let keys = Keys {
        order: None,
        group: Some((0..n).map(|f| (f / l) as u32).collect()),
    };
    let mut layout = Layout::of(&keys, n);
    layout.blocks = std::iter::once(0..n).collect();
    Ok((data, layout))
}

/// The training file's flows in sequence order and each flow's block (train, validation,
/// test), as `train` cut them and `test`/`assess` find them again.
fn training_blocks(config: &Config) -> Result<(Labeled, Layout, Vec<Part>)> {
    let cfg = &config.data;
    let (data, layout) = read(&cfg.path, config, None)?;
    let test = if cfg.test_path.is_some() {
        0.0
    } else {
        cfg.test_size
    };
    let parts = layout.blocked(test, cfg.val_size);
    Ok((data, layout, parts))
}

/// What `train` fits a sequence family on: [`prepare_parts`] on the training file's blocks,
/// with the test file's windows when `data.test_path` is set.
pub fn prepare_training(config: &Config) -> Result<Prepared> {
    let (data, layout, parts) = training_blocks(config)?;
    let mut p = prepare_parts(config, &data, layout, &parts)?;
    if p.val.is_empty() {
        bail_input!(
            "{}: no validation window: no group has {} consecutive validation flows \
             (data.val_size of each group's flows, sequence.length)",
            config.data.path.display(),
            config.sequence.length
        );
    }
    if let Some(path) = &config.data.test_path {
        p.test = whole_file(path, config, &p.pre, &mut p.notices)?;
    }
    Ok(p)
}

/// The preprocessing fitted on the training part's flows, and the windows of each part
/// (training windows every `sequence.stride` flows, the others at every flow). Shared by
/// `train`, each `cv` fold and the final cross-validated model.
pub fn prepare_parts(
    config: &Config,
    data: &Labeled,
    layout: Layout,
    parts: &[Part],
) -> Result<Prepared> {
    let (cfg, s) = (&config.data, &config.sequence);
    let path = cfg.path.display();
    let train_rows = layout.rows(parts, Part::Train);
    let (mut pre, mut notices) = Preprocessor::fit(
        &data.table,
        &train_rows,
        cfg,
        (data.classes.clone(), data.anomalous.clone()),
    )
    .with_context(|| format!("fitting preprocessing on {path}"))?;
    pre.keys = Keys::columns(s);
    notices.splice(0..0, data.notices.iter().cloned());
    let seq = Sequenced::encode(&pre, data, layout, s.length, &mut notices)?;
    let set = |part, stride| {
        let ends = seq.layout.window_ends(parts, part, s.length, stride);
        seq.windows(ends, s.label)
    };
    let train = set(Part::Train, s.stride);
    let pos = train.positives();
    if pos == 0 || pos == train.len() {
        bail_input!(
            "{path}: the training windows hold a single class ({} normal, {pos} anomalous; \
             sequence.length {}, {} groups); check the labels, sequence.label and the sizes",
            train.len() - pos,
            s.length,
            seq.layout.sequences.len()
        );
    }
    Ok(Prepared {
        train,
        val: set(Part::Validation, 1),
        test: set(Part::Test, 1),
        pre,
        notices,
        selection: None,
        feedback: None,
    })
}

/// The windows (at every flow) of the runs of `rows` (table rows) in `layout`: a cv fold's
/// validation windows, as the fold scored them.
pub fn windows_of(
    config: &Config,
    pre: &Preprocessor,
    data: &Labeled,
    layout: &Layout,
    rows: &[usize],
) -> Result<Dataset> {
    let parts = layout.parts_of(&[], rows);
    let l = config.sequence.length;
    let seq = Sequenced::encode(pre, data, layout.clone(), l, &mut Vec::new())?;
    let ends = seq.layout.window_ends(&parts, Part::Validation, l, 1);
    Ok(seq.windows(ends, config.sequence.label))
}

/// Every window of a file (one at each flow from the `length`-th of its group on).
fn whole_file(
    path: &Path,
    config: &Config,
    pre: &Preprocessor,
    notices: &mut Vec<String>,
) -> Result<Dataset> {
    let (data, layout) = read(path, config, Some(pre))?;
    notices.extend(
        data.notices
            .iter()
            .map(|n| format!("{}: {n}", path.display())),
    );
    let parts = vec![Part::Test; layout.order.len()];
    let l = config.sequence.length;
    let seq = Sequenced::encode(pre, &data, layout, l, notices)?;
    let ends = seq.layout.window_ends(&parts, Part::Test, l, 1);
    Ok(seq.windows(ends, config.sequence.label))
}

/// The windows of the training, validation and test blocks, as `train` cut them.
pub fn evaluation_sets(
    config: &Config,
    pre: &Preprocessor,
) -> Result<Vec<(&'static str, Dataset)>> {
    let s = &config.sequence;
    let (data, layout, parts) = training_blocks(config)?;
    let mut notices = Vec::new();
    let seq = Sequenced::encode(pre, &data, layout, s.length, &mut notices)?;
    let set = |part, stride| {
        let ends = seq.layout.window_ends(&parts, part, s.length, stride);
        seq.windows(ends, s.label)
    };
    let test = match &config.data.test_path {
        Some(p) => whole_file(p, config, pre, &mut notices)?,
        None => set(Part::Test, 1),
    };
    Ok(vec![
        ("train", set(Part::Train, s.stride)),
        ("validation", set(Part::Validation, 1)),
        ("test", test),
    ])
}

/// The windows `test` evaluates: every window of a given file, or the run's test block.
pub fn evaluation(
    config: &Config,
    pre: &Preprocessor,
    file: Option<&Path>,
) -> Result<(Dataset, Vec<String>)> {
    let mut notices = Vec::new();
    if file.is_some() && config.data.format == DataFormat::Npy {
        bail_input!(
            "--data: a model trained on .npy windows is tested on the last data.test_size of \
             its own windows (data.path and data.labels_path)"
        );
    }
    let ds = match file.or(config.data.test_path.as_deref()) {
        Some(p) => whole_file(p, config, pre, &mut notices)?,
        None => {
            let mut sets = evaluation_sets(config, pre)?;
            sets.pop().expect("three sets").1
        }
    };
    notices.push(format!(
        "scored {} windows of {} flows (a score per flow from the {}th of its group on)",
        ds.len(),
        config.sequence.length,
        config.sequence.length
    ));
    Ok((ds, notices))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn window_labels_follow_the_rule() {
        // Flows' labels 0 1 1 0: last says 0, any 1, majority ties 2-2 and takes the later.
        let y = [0.0, 1.0, 1.0, 0.0];
        assert_eq!(window_label(&y, &[], WindowLabel::Last), (0.0, None));
        assert_eq!(window_label(&y, &[], WindowLabel::Any), (1.0, None));
        assert_eq!(window_label(&y, &[], WindowLabel::Majority), (0.0, None));
        let y = [1.0, 1.0, 0.0];
        assert_eq!(window_label(&y, &[], WindowLabel::Majority), (1.0, None));
        assert_eq!(
            window_label(&[0.0, 0.0], &[], WindowLabel::Any),
            (0.0, None)
        );
        // Multiclass: any takes the last anomalous flow's class; majority counts classes.
        let (y, class) = ([1.0, 1.0, 0.0, 1.0, 0.0], [2, 2, 0, 1, 0]);
        assert_eq!(window_label(&y, &class, WindowLabel::Any), (1.0, Some(1)));
        assert_eq!(window_label(&y, &class, WindowLabel::Last), (0.0, Some(0)));
        assert_eq!(
            window_label(&y, &class, WindowLabel::Majority),
            (0.0, Some(0))
        );
    }

    #[test]
    fn a_window_is_its_flows_channel_by_channel() {
        // Three flows of two features: (1, 10), (2, 20), (3, 30).
        let w = Windows {
            flows: Arc::new(vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0]),
            channels: 2,
            length: 2,
            ends: vec![1, 2],
        };
        let mut out = Vec::new();
        w.push(1, &mut out);
        assert_eq!(out, [2.0, 3.0, 20.0, 30.0]);
    }

    #[test]
    fn times_parse_as_numbers_iso_and_day_first_dates() {
        assert_eq!(parse_time("12.5"), Some(12.5));
        assert_eq!(parse_time("1970-01-02 00:00:01"), Some(86_401.0));
        assert_eq!(parse_time("1970-01-02T00:00:01.5Z"), Some(86_401.5));
        // CICFlowMeter: day first, hours without a leading zero, optional seconds and AM/PM.
        let t = parse_time("3/7/2017 8:55:58").unwrap();
        assert_eq!(t, parse_time("2017-07-03 08:55:58").unwrap());
        assert_eq!(
            parse_time("3/7/2017 1:05 PM"),
            parse_time("2017-07-03 13:05")
        );
        assert_eq!(parse_time("2000-03-01"), Some(11_017.0 * 86_400.0));
        for bad in ["", "tcp", "2017-13-01", "1/1/2017 25:00", "inf"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    /// An .npy file's windows come back exactly as written (channels × time), each with its
    /// label; an array of the wrong rank is refused naming its shape.
    #[test]
    fn npy_windows_come_back_as_written() {
        use crate::data::npy::tests::npy;
        let dir = tempfile::tempdir().unwrap();
        let (n, c, l) = (6, 2, 4);
        let x: Vec<f32> = (0..n * c * l).map(|i| i as f32 * 0.5).collect();
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.path().join("X.npy"), npy("<f4", "(6, 2, 4)", &bytes)).unwrap();
        let y: Vec<u8> = [0i64, 1, 0, 1, 1, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(dir.path().join("y.npy"), npy("<i8", "(6,)", &y)).unwrap();
        let mut config = Config::default();
        config.data.format = DataFormat::Npy;
        config.data.path = dir.path().join("X.npy");
        config.data.labels_path = Some(dir.path().join("y.npy"));
        config.data.scaler = crate::config::ScalerKind::None;
        config.sequence.length = l;
        let (data, layout) = read(&config.data.path, &config, None).unwrap();
        let rows: Vec<usize> = (0..n * l).collect();
        let classes = (data.classes.clone(), data.anomalous.clone());
        let (pre, _) = Preprocessor::fit(&data.table, &rows, &config.data, classes).unwrap();
        let seq = Sequenced::encode(&pre, &data, layout, l, &mut Vec::new()).unwrap();
        let parts = vec![Part::Train; n * l];
        let ds = seq.windows(
            seq.layout.window_ends(&parts, Part::Train, l, 1),
            WindowLabel::Last,
        );
        let mut back = Vec::new();
        ds.gather(&(0..n).collect::<Vec<_>>(), &mut back);
        assert_eq!(back, x);
        assert_eq!(ds.y, [0.0, 1.0, 0.0, 1.0, 1.0, 0.0]);

        std::fs::write(dir.path().join("X.npy"), npy("<f4", "(6, 8)", &bytes)).unwrap();
        let Err(err) = read(&config.data.path, &config, None) else {
            panic!("a 2-d X was read")
        };
        let err = crate::error::one_line(&err);
        assert!(err.contains("shape (6, 8), expected (N, C, L)"), "{err}");
    }

    /// Over every window of a generated file, for the train/validation/test blocks and for
    /// each cv fold: a window's flows are consecutive flows of one host, in time order, all
    /// in the window's part.
    #[test]
    fn windows_never_cross_a_split_or_a_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.csv");
        crate::data::generate::write_sequences(&path, 3000, 7, 3, 0.1).unwrap();
        let mut config = Config::default();
        config.data.path = path.clone();
        config.sequence.order_by = Some("timestamp".into());
        config.sequence.group_by = Some("src_host".into());
        let keys = Keys::columns(&config.sequence);
        let mut data =
            super::super::read_keyed(&path, &config.data, (config.task, None), false, &keys)
                .unwrap();
        // The raw key cells, before `Keys::take` removes them.
        let text = |name: &str| match &data.table.column(name).unwrap().data {
            ColumnData::Categorical(d) => (0..d.codes.len())
                .map(|r| d.value(r).to_string())
                .collect::<Vec<_>>(),
            _ => unreachable!("keys are read as text"),
        };
        let (host, time) = (text("src_host"), text("timestamp"));
        let taken = Keys::take(&mut data.table, &config.sequence).unwrap();
        assert!(data.table.column("timestamp").is_none());
        let layout = Layout::of(&taken, data.y.len());
        assert_eq!(layout.sequences.len(), 7);
        let length = 16;
        let check = |parts: &[Part], part: Part, stride: usize| {
            let ends = layout.window_ends(parts, part, length, stride);
            assert!(!ends.is_empty());
            for &e in &ends {
                let rows: Vec<usize> = (e + 1 - length..=e).map(|i| layout.order[i]).collect();
                assert!((e + 1 - length..=e).all(|i| parts[i] == part));
                assert!(rows.iter().all(|&r| host[r] == host[rows[0]]));
                let t: Vec<f64> = rows.iter().map(|&r| time[r].parse().unwrap()).collect();
                assert!(t.windows(2).all(|p| p[0] <= p[1]));
                // Consecutive: no flow of the host falls between two of the window's.
                let between = (0..host.len()).filter(|&r| {
                    host[r] == host[rows[0]]
                        && time[r].parse::<f64>().unwrap() > t[0]
                        && time[r].parse::<f64>().unwrap() < t[length - 1]
                });
                assert_eq!(between.count(), length - 2);
            }
            ends
        };
        let parts = layout.blocked(0.2, 0.1);
        let every = check(&parts, Part::Train, 1);
        // Every 4th window of each host's run (its count rounded up per host).
        let strided = check(&parts, Part::Train, 4);
        assert!(strided.iter().all(|e| every.contains(e)));
        assert!((every.len()..=every.len() + 3 * 7).contains(&(4 * strided.len())));
        check(&parts, Part::Validation, 1);
        check(&parts, Part::Test, 1);
        // Each host's test flows are its last 20%.
        let (folds, test) = layout.folds(0.2, 3);
        assert_eq!(test, layout.rows(&parts, Part::Test));
        for f in 0..3 {
            let train: Vec<usize> = (0..3)
                .filter(|&g| g != f)
                .flat_map(|g| folds[g].clone())
                .collect();
            let fold = layout.parts_of(&train, &folds[f]);
            check(&fold, Part::Train, 1);
            check(&fold, Part::Validation, 1);
        }
    }
}
