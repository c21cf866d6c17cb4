//! Where alerts are kept: an embedded SQLite file (WAL mode) or a PostgreSQL database shared
//! by several replicas. Both run the same SQL text (`$1`-style parameters, which SQLite reads
//! as named parameters numbered by first appearance), so the store's logic exists once; only
//! the id column's type and the writers' lock differ. The schema is versioned by migrations
//! recorded in `schema_migrations`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use serde_json::Value;

use super::{Alert, Severity};
use crate::data::feedback::Verdict;
use crate::error::bad_input;

/// The schema, one step per version; `{id}` is the backend's auto-increment key.
const MIGRATIONS: [&str; 1] = ["CREATE TABLE alerts (
    id {id},
    time BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    count BIGINT NOT NULL,
    received BIGINT NOT NULL,
    model TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    severity BIGINT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    class TEXT,
    flow_id TEXT,
    src TEXT,
    src_port BIGINT,
    dst TEXT,
    dst_port BIGINT,
    protocol TEXT,
    reasons TEXT,
    fields TEXT NOT NULL,
    verdict TEXT,
    verdict_time BIGINT,
    dedup_key TEXT
);
CREATE INDEX alerts_time ON alerts (time DESC, id DESC);
CREATE INDEX alerts_dedup ON alerts (dedup_key, last_seen) WHERE dedup_key IS NOT NULL;"];

/// The columns an [`Alert`] is read from, in [`from_row`]'s order.
const COLUMNS: &str = "id, time, last_seen, count, received, model, checkpoint, score, \
    threshold, severity, confidence, class, flow_id, src, src_port, dst, dst_port, protocol, \
    reasons, fields, verdict, verdict_time";

/// Keys looked up, or rows inserted times [`INSERT_WIDTH`], per statement (well under both
/// databases' limits on parameters).
const CHUNK: usize = 2000;

/// The columns an INSERT writes (see [`insert_params`]).
const INSERT_WIDTH: usize = 20;

/// `a` joins `into`: one more alarm (or `a.count`), seen until the later of the two, with the
/// higher score (and its confidence) and severity.
fn merge(into: &mut Alert, a: &Alert) {
    into.count += a.count;
    into.last_seen = into.last_seen.max(a.last_seen);
    into.received = into.received.max(a.received);
    if a.score > into.score {
        (into.score, into.confidence) = (a.score, a.confidence);
    }
    into.severity = into.severity.max(a.severity);
}

/// The INSERT of `rows` alerts, numbering [`insert_params`] row after row.
fn insert_sql(rows: usize) -> String {
    let width = INSERT_WIDTH;
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", row.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO alerts (time, last_seen, count, received, model, checkpoint, score, \
         threshold, severity, confidence, class, flow_id, src, src_port, dst, dst_port, \
         protocol, reasons, fields, dedup_key) VALUES {} RETURNING id",
        values.join(", ")
    )
}

/// The values of an INSERT's columns, in their order.
fn insert_params(a: &Alert) -> Vec<Cell> {
    let json = |v: &Option<Value>| Cell::Text(v.as_ref().map(Value::to_string));
    vec![
        Cell::Int(Some(a.time)),
        Cell::Int(Some(a.last_seen)),
        Cell::Int(Some(a.count)),
        Cell::Int(Some(a.received)),
        Cell::Text(Some(a.model.clone())),
        Cell::Text(Some(a.checkpoint.clone())),
        Cell::Real(Some(a.score)),
        Cell::Real(Some(a.threshold)),
        Cell::Int(Some(a.severity.rank())),
        Cell::Real(Some(a.confidence)),
        text(&a.class),
        text(&a.flow_id),
        text(&a.src),
        Cell::Int(a.src_port),
        text(&a.dst),
        Cell::Int(a.dst_port),
        text(&a.protocol),
        json(&a.reasons),
        Cell::Text(Some(a.fields.clone())),
        Cell::Text(a.dedup_key()),
    ]
}

/// A parameter or a result cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
}

impl Cell {
    fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(v) => *v,
            Cell::Real(v) => v.map(|f| f as i64),
            Cell::Text(_) => None,
        }
    }

    fn real(&self) -> Option<f64> {
        match self {
            Cell::Real(v) => *v,
            Cell::Int(v) => v.map(|i| i as f64),
            Cell::Text(_) => None,
        }
    }

    fn text(&self) -> Option<String> {
        match self {
            Cell::Text(v) => v.clone(),
            _ => None,
        }
    }
}

fn text(s: &Option<String>) -> Cell {
    Cell::Text(s.clone())
}

enum Db {
    Sqlite(rusqlite::Connection),
    /// The client and its prepared statements by SQL text.
    Postgres(Box<postgres::Client>, HashMap<String, postgres::Statement>),
}

pub struct Store {
    db: Db,
    /// [`insert_sql`] by row count: the same few sizes recur.
    inserts: HashMap<usize, String>,
    /// The URL or path, with any password hidden, for messages.
    pub name: String,
}

/// Which alerts a listing or a count covers.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub severity: Vec<Severity>,
    pub model: Option<String>,
    pub src: Option<String>,
    pub dst: Option<String>,
    /// A verdict, or `Some(None)`: alerts not judged yet.
    pub verdict: Option<Option<Verdict>>,
}

/// A page of alerts, newest first, and the cursor of the next one.
pub struct Page {
    pub alerts: Vec<Alert>,
    pub next: Option<String>,
}

/// Alerts per time bucket and severity.
#[derive(Debug, PartialEq)]
pub struct Bucket {
    pub start: i64,
    pub severity: Severity,
    /// Alerts (aggregated records) and the alarms they hold.
    pub alerts: i64,
    pub alarms: i64,
}

impl Store {
    /// Opens (creating and migrating where needed) `postgres://…`, `postgresql://…`, or a
    /// SQLite file at any other path.
    pub fn open(url: &str) -> Result<Store> {
        let name = hide_password(url);
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let client = postgres::Client::connect(url, postgres::NoTls)
                .map_err(|e| bad_input(format!("--alerts-db {name}: cannot connect: {e}")))?;
            Db::Postgres(Box::new(client), HashMap::new())
        } else {
            Db::Sqlite(open_sqlite(Path::new(url))?)
        };
        let mut store = Store {
            db,
            name,
            inserts: HashMap::new(),
        };
        store
            .migrate()
            .with_context(|| format!("--alerts-db {}: preparing the schema", store.name))?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        self.begin()?;
        let done = self.apply_migrations();
        self.end(done)
    }

    fn apply_migrations(&mut self) -> Result<()> {
        self.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)",
            &[],
        )?;
        let rows = self.query("SELECT MAX(version) FROM schema_migrations", &[])?;
        let have = rows.first().and_then(|r| r[0].int()).unwrap_or(0) as usize;
        if have > MIGRATIONS.len() {
            return Err(anyhow!(
                "the database is at schema version {have}; this build knows {}: use a newer anomaly",
                MIGRATIONS.len()
            ));
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(have) {
            let id = match self.db {
                Db::Sqlite(_) => "INTEGER PRIMARY KEY AUTOINCREMENT",
                Db::Postgres(..) => "BIGSERIAL PRIMARY KEY",
            };
            self.batch(&step.replace("{id}", id))?;
            self.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
                &[
                    Cell::Int(Some(i as i64 + 1)),
                    Cell::Int(Some(super::now_micros())),
                ],
            )?;
        }
        Ok(())
    }

    /// Stores `alerts` in one transaction: each either joins the alert with its dedup key
    /// last seen within `window` µs (count, last seen and the highest score and severity
    /// updated) or becomes a new one. Returns each alert touched, as it now is, in the order
    /// first touched. A batch costs a few statements, not two per alert: one lookup of the
    /// open alerts for all its keys, the merging in memory, multi-row inserts, and one update
    /// per alert that grew (a network round trip each, on PostgreSQL).
    pub fn write(&mut self, alerts: Vec<Alert>, window: i64) -> Result<Vec<Alert>> {
        self.begin()?;
        let done = self.write_batch(alerts, window);
        self.end(done)
    }

    fn write_batch(&mut self, alerts: Vec<Alert>, window: i64) -> Result<Vec<Alert>> {
        let earliest = alerts.iter().map(|a| a.time).min().unwrap_or(0) - window;
        let keys: Vec<String> = alerts.iter().filter_map(Alert::dedup_key).collect();
        // Alerts touched, in order; the latest per dedup key; which existed before.
        let mut touched: Vec<Alert> = self.open_alerts(&keys, earliest)?;
        let mut existing = vec![true; touched.len()];
        let mut dirty = vec![false; touched.len()];
        let mut latest: HashMap<String, usize> = HashMap::new();
        for (i, a) in touched.iter().enumerate() {
            if let Some(k) = a.dedup_key() {
                latest.insert(k, i);
            }
        }
        for a in alerts {
            let key = a.dedup_key();
            let joins = key
                .as_ref()
                .and_then(|k| latest.get(k))
                .copied()
                .filter(|&i| {
                    let old = &touched[i];
                    old.last_seen >= a.time - window && old.time <= a.time + window
                });
            match joins {
                Some(i) => {
                    merge(&mut touched[i], &a);
                    dirty[i] = true;
                }
                None => {
                    if let Some(k) = key {
                        latest.insert(k, touched.len());
                    }
                    touched.push(a);
                    existing.push(false);
                    dirty.push(true);
                }
            }
        }
        let new: Vec<usize> = (0..touched.len()).filter(|&i| !existing[i]).collect();
        self.insert(&mut touched, &new)?;
        for i in (0..touched.len()).filter(|&i| existing[i] && dirty[i]) {
            self.update(&touched[i])?;
        }
        Ok(touched
            .into_iter()
            .zip(dirty)
            .filter_map(|(a, dirty)| dirty.then_some(a))
            .collect())
    }

    /// The alerts of `keys` last seen at or after `since`, oldest first.
    fn open_alerts(&mut self, keys: &[String], since: i64) -> Result<Vec<Alert>> {
        let mut unique: Vec<&String> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        let mut out = Vec::new();
        for chunk in unique.chunks(CHUNK) {
            let mut q = Query::default();
            let list: Vec<String> = chunk
                .iter()
                .map(|k| q.param(Cell::Text(Some(k.to_string()))))
                .collect();
            let p = q.param(Cell::Int(Some(since)));
            let sql = format!(
                "SELECT {COLUMNS} FROM alerts WHERE dedup_key IN ({}) AND last_seen >= {p}",
                list.join(", ")
            );
            for row in self.query(&sql, &q.params)? {
                out.push(from_row(&row)?);
            }
        }
        out.sort_by_key(|a| (a.last_seen, a.id));
        Ok(out)
    }

    /// Inserts `touched[i]` for each `i` of `new`, a chunk per statement, and sets their ids.
    /// Ids are given in insert order in both databases (the writer holds the write lock), so
    /// the returned ids, sorted, are the rows' in order.
    fn insert(&mut self, touched: &mut [Alert], new: &[usize]) -> Result<()> {
        for chunk in new.chunks(CHUNK / INSERT_WIDTH) {
            let params: Vec<Cell> = chunk
                .iter()
                .flat_map(|&i| insert_params(&touched[i]))
                .collect();
            let sql = self
                .inserts
                .entry(chunk.len())
                .or_insert_with(|| insert_sql(chunk.len()))
                .clone();
            let mut ids: Vec<i64> = self
                .query(&sql, &params)?
                .iter()
                .map(|r| {
                    r[0].int()
                        .ok_or_else(|| anyhow!("the database returned no id"))
                })
                .collect::<Result<_>>()?;
            ids.sort_unstable();
            if ids.len() != chunk.len() {
                return Err(anyhow!(
                    "{} alerts inserted, {} ids returned",
                    chunk.len(),
                    ids.len()
                ));
            }
            for (&i, id) in chunk.iter().zip(ids) {
                touched[i].id = id;
            }
        }
        Ok(())
    }

    /// Writes an existing alert's count, last seen, arrival, score and severity.
    fn update(&mut self, a: &Alert) -> Result<()> {
        self.execute(
            "UPDATE alerts SET count = $1, last_seen = $2, received = $3, score = $4, \
             confidence = $5, severity = $6 WHERE id = $7",
            &[
                Cell::Int(Some(a.count)),
                Cell::Int(Some(a.last_seen)),
                Cell::Int(Some(a.received)),
                Cell::Real(Some(a.score)),
                Cell::Real(Some(a.confidence)),
                Cell::Int(Some(a.severity.rank())),
                Cell::Int(Some(a.id)),
            ],
        )?;
        Ok(())
    }

    /// The alerts `filter` covers, newest first (by time, then id), `limit` of them after the
    /// `cursor` (time, id) a previous page ended with.
    pub fn list(
        &mut self,
        filter: &Filter,
        limit: usize,
        cursor: Option<(i64, i64)>,
    ) -> Result<Page> {
        let mut q = Query::new(filter);
        if let Some((time, id)) = cursor {
            let (t1, t2, i) = (
                q.param(Cell::Int(Some(time))),
                q.param(Cell::Int(Some(time))),
                q.param(Cell::Int(Some(id))),
            );
            q.conditions
                .push(format!("(time < {t1} OR (time = {t2} AND id < {i}))"));
        }
        let limit_param = q.param(Cell::Int(Some(limit as i64 + 1)));
        let sql = format!(
            "SELECT {COLUMNS} FROM alerts{} ORDER BY time DESC, id DESC LIMIT {limit_param}",
            q.clause()
        );
        let rows = self.query(&sql, &q.params)?;
        let mut alerts = rows
            .iter()
            .map(|r| from_row(r))
            .collect::<Result<Vec<_>>>()?;
        let next = (alerts.len() > limit).then(|| {
            alerts.truncate(limit);
            let last = &alerts[limit - 1];
            format!("{}_{}", last.time, last.id)
        });
        Ok(Page { alerts, next })
    }

    pub fn get(&mut self, id: i64) -> Result<Option<Alert>> {
        let sql = format!("SELECT {COLUMNS} FROM alerts WHERE id = $1");
        let rows = self.query(&sql, &[Cell::Int(Some(id))])?;
        rows.first().map(|r| from_row(r)).transpose()
    }

    /// Records an analyst's verdict; the alert as it now is (none: no such alert).
    pub fn set_verdict(&mut self, id: i64, verdict: Verdict) -> Result<Option<Alert>> {
        self.execute(
            "UPDATE alerts SET verdict = $1, verdict_time = $2 WHERE id = $3",
            &[
                Cell::Text(Some(verdict.as_str().to_string())),
                Cell::Int(Some(super::now_micros())),
                Cell::Int(Some(id)),
            ],
        )?;
        self.get(id)
    }

    /// Alerts and alarms per `bucket` µs (by the alerts' first time) and severity, oldest
    /// bucket first.
    pub fn stats(&mut self, filter: &Filter, bucket: i64) -> Result<Vec<Bucket>> {
        let mut q = Query::default();
        let b1 = q.param(Cell::Int(Some(bucket)));
        let b2 = q.param(Cell::Int(Some(bucket)));
        q.add_filter(filter);
        let sql = format!(
            "SELECT (time / {b1}) * {b2} AS bucket, severity, COUNT(*), CAST(SUM(count) AS BIGINT) \
             FROM alerts{} GROUP BY bucket, severity ORDER BY bucket, severity",
            q.clause()
        );
        self.query(&sql, &q.params)?
            .iter()
            .map(|r| {
                Ok(Bucket {
                    start: r[0].int().unwrap_or(0),
                    severity: severity(r[1].int())?,
                    alerts: r[2].int().unwrap_or(0),
                    alarms: r[3].int().unwrap_or(0),
                })
            })
            .collect()
    }

    /// Deletes alerts whose latest alarm arrived before `before` (µs; arrival, not the rows'
    /// own time, so a replayed old capture is kept as long as a live one); how many.
    pub fn purge(&mut self, before: i64) -> Result<u64> {
        self.execute(
            "DELETE FROM alerts WHERE received < $1",
            &[Cell::Int(Some(before))],
        )
    }

    /// Starts a write transaction. SQLite takes its write lock now (so a reader never has to
    /// upgrade); PostgreSQL replicas serialize their writes on one advisory lock, so two never
    /// both open an alert for the same dedup key.
    fn begin(&mut self) -> Result<()> {
        match &mut self.db {
            Db::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Db::Postgres(c, _) => {
                c.batch_execute("BEGIN; SELECT pg_advisory_xact_lock(8240331)")?
            }
        }
        Ok(())
    }

    /// Commits after `done` succeeded, else rolls back; `done`'s result.
    fn end<T>(&mut self, done: Result<T>) -> Result<T> {
        let finish = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.batch(finish);
        let value = done?;
        ended?;
        Ok(value)
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        match &mut self.db {
            Db::Sqlite(c) => c.execute_batch(sql)?,
            Db::Postgres(c, _) => c.batch_execute(sql)?,
        }
        Ok(())
    }

    fn execute(&mut self, sql: &str, params: &[Cell]) -> Result<u64> {
        Ok(match &mut self.db {
            Db::Sqlite(c) => {
                let mut statement = c.prepare_cached(sql)?;
                statement.execute(rusqlite::params_from_iter(params.iter().map(sqlite_param)))?
                    as u64
            }
            Db::Postgres(c, prepared) => {
                let statement = pg_statement(c, prepared, sql)?;
                let boxed = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    boxed.iter().map(|b| b.as_ref()).collect();
                c.execute(&statement, &refs)?
            }
        })
    }

    fn query(&mut self, sql: &str, params: &[Cell]) -> Result<Vec<Vec<Cell>>> {
        match &mut self.db {
            Db::Sqlite(c) => {
                let mut statement = c.prepare_cached(sql)?;
                let width = statement.column_count();
                let mut rows =
                    statement.query(rusqlite::params_from_iter(params.iter().map(sqlite_param)))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(
                        (0..width)
                            .map(|i| sqlite_cell(row.get_ref(i)))
                            .collect::<Result<_>>()?,
                    );
                }
                Ok(out)
            }
            Db::Postgres(c, prepared) => {
                let statement = pg_statement(c, prepared, sql)?;
                let boxed = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    boxed.iter().map(|b| b.as_ref()).collect();
                c.query(&statement, &refs)?
                    .iter()
                    .map(|row| (0..row.len()).map(|i| pg_cell(row, i)).collect())
                    .collect()
            }
        }
    }
}

/// Creates the empty database `anomaly_NAME` (dropped first if it exists) on the PostgreSQL
/// server at `server` (a URL), and returns its URL: each test and benchmark run writes to a
/// database of its own.
pub fn create_database(server: &str, name: &str) -> Result<String> {
    let db = format!("anomaly_{name}");
    let mut admin = postgres::Client::connect(server, postgres::NoTls)?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))?;
    admin.batch_execute(&format!("CREATE DATABASE {db}"))?;
    let (base, _) = server
        .rsplit_once('/')
        .ok_or_else(|| anyhow!("{}: expected postgres://HOST/DB", hide_password(server)))?;
    Ok(format!("{base}/{db}"))
}

/// A SQLite file opened for many readers and one writer: WAL mode, `synchronous = NORMAL`
/// (a commit survives the process being killed; only a power cut can lose the last ones),
/// and waiting up to 10 s for another writer's lock.
fn open_sqlite(path: &Path) -> Result<rusqlite::Connection> {
    let name = path.display();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| bad_input(format!("--alerts-db {name}: cannot create its folder: {e}")))?;
    }
    let c = rusqlite::Connection::open(path)
        .map_err(|e| bad_input(format!("--alerts-db {name}: cannot open: {e}")))?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    // The bundled SQLite is built with STAT4, which recompiles a statement whenever a bound
    // value could change its plan: every dedup lookup. The query planner stability guarantee
    // keeps each prepared plan (two thirds of the write time before).
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .map_err(|e| bad_input(format!("--alerts-db {name}: not a SQLite database ({e})")))?;
    Ok(c)
}

/// Filter conditions and their parameters, numbered in order of appearance.
#[derive(Default)]
struct Query {
    conditions: Vec<String>,
    params: Vec<Cell>,
}

impl Query {
    fn new(filter: &Filter) -> Query {
        let mut q = Query::default();
        q.add_filter(filter);
        q
    }

    fn param(&mut self, value: Cell) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    fn add_filter(&mut self, f: &Filter) {
        let int = |v: i64| Cell::Int(Some(v));
        let txt = |v: &str| Cell::Text(Some(v.to_string()));
        if let Some(t) = f.since {
            let p = self.param(int(t));
            self.conditions.push(format!("time >= {p}"));
        }
        if let Some(t) = f.until {
            let p = self.param(int(t));
            self.conditions.push(format!("time < {p}"));
        }
        if !f.severity.is_empty() {
            let ps: Vec<String> = f
                .severity
                .iter()
                .map(|s| self.param(int(s.rank())))
                .collect();
            self.conditions
                .push(format!("severity IN ({})", ps.join(", ")));
        }
        for (column, value) in [("model", &f.model), ("src", &f.src), ("dst", &f.dst)] {
            if let Some(v) = value {
                let p = self.param(txt(v));
                self.conditions.push(format!("{column} = {p}"));
            }
        }
        match f.verdict {
            Some(Some(v)) => {
                let p = self.param(txt(v.as_str()));
                self.conditions.push(format!("verdict = {p}"));
            }
            Some(None) => self.conditions.push("verdict IS NULL".into()),
            None => {}
        }
    }

    fn clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }
}

/// A page's `next`: the last alert's time and id.
pub fn parse_cursor(c: &str) -> Option<(i64, i64)> {
    let (time, id) = c.split_once('_')?;
    Some((time.parse().ok()?, id.parse().ok()?))
}

fn severity(rank: Option<i64>) -> Result<Severity> {
    rank.and_then(|r| Severity::ALL.get((r - 1) as usize).copied())
        .ok_or_else(|| anyhow!("a stored alert has severity rank {rank:?}, expected 1 to 3"))
}

/// An alert from a row of [`COLUMNS`].
fn from_row(r: &[Cell]) -> Result<Alert> {
    let json = |c: &Cell| -> Result<Option<Value>> {
        c.text()
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(Into::into)
    };
    let need = |c: &Cell, what: &str| {
        c.int()
            .ok_or_else(|| anyhow!("a stored alert has no {what}"))
    };
    Ok(Alert {
        id: need(&r[0], "id")?,
        time: need(&r[1], "time")?,
        last_seen: need(&r[2], "last_seen")?,
        count: need(&r[3], "count")?,
        received: need(&r[4], "received")?,
        model: r[5].text().unwrap_or_default(),
        checkpoint: r[6].text().unwrap_or_default(),
        score: r[7].real().unwrap_or(f64::NAN),
        threshold: r[8].real().unwrap_or(f64::NAN),
        severity: severity(r[9].int())?,
        confidence: r[10].real().unwrap_or(f64::NAN),
        class: r[11].text(),
        flow_id: r[12].text(),
        src: r[13].text(),
        src_port: r[14].int(),
        dst: r[15].text(),
        dst_port: r[16].int(),
        protocol: r[17].text(),
        reasons: json(&r[18])?,
        fields: r[19].text().unwrap_or_else(|| "{}".into()),
        verdict: r[20]
            .text()
            .and_then(|v| Verdict::ALL.into_iter().find(|x| x.as_str() == v)),
        verdict_time: r[21].int(),
    })
}

fn sqlite_param(c: &Cell) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match c {
        Cell::Int(Some(v)) => V::Integer(*v),
        Cell::Real(Some(v)) => V::Real(*v),
        Cell::Text(Some(v)) => V::Text(v.clone()),
        _ => V::Null,
    }
}

fn sqlite_cell(v: rusqlite::Result<rusqlite::types::ValueRef<'_>>) -> Result<Cell> {
    use rusqlite::types::ValueRef as V;
    Ok(match v? {
        V::Integer(i) => Cell::Int(Some(i)),
        V::Real(f) => Cell::Real(Some(f)),
        V::Text(t) => Cell::Text(Some(String::from_utf8_lossy(t).into_owned())),
        V::Null | V::Blob(_) => Cell::Text(None),
    })
}

fn pg_statement(
    c: &mut postgres::Client,
    prepared: &mut HashMap<String, postgres::Statement>,
    sql: &str,
) -> Result<postgres::Statement> {
    if let Some(s) = prepared.get(sql) {
        return Ok(s.clone());
    }
    let s = c.prepare(sql)?;
    // Batches of every size make statements of every shape: keep the latest few.
    if prepared.len() >= 64 {
        prepared.clear();
    }
    prepared.insert(sql.to_string(), s.clone());
    Ok(s)
}

fn pg_params(params: &[Cell]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|c| -> Box<dyn postgres::types::ToSql + Sync> {
            match c.clone() {
                Cell::Int(v) => Box::new(v),
                Cell::Real(v) => Box::new(v),
                Cell::Text(v) => Box::new(v),
            }
        })
        .collect()
}

fn pg_cell(row: &postgres::Row, i: usize) -> Result<Cell> {
    use postgres::types::Type;
    let ty = row.columns()[i].type_();
    Ok(if *ty == Type::INT8 {
        Cell::Int(row.try_get(i)?)
    } else if *ty == Type::INT4 {
        Cell::Int(row.try_get::<_, Option<i32>>(i)?.map(i64::from))
    } else if *ty == Type::FLOAT8 {
        Cell::Real(row.try_get(i)?)
    } else {
        Cell::Text(row.try_get(i)?)
    })
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An alert from `src` to `dst`:80 at `time` seconds.
    fn alarm(src: &str, dst: &str, time: i64, score: f64, severity: Severity) -> Alert {
        Alert {
            id: 0,
            time: time * 1_000_000,
            last_seen: time * 1_000_000,
            count: 1,
            received: time * 1_000_000,
            model: "m".into(),
            checkpoint: "abc".into(),
            score,
            threshold: 0.5,
            severity,
            confidence: 0.5,
            class: None,
            flow_id: Some(format!("{src}-{dst}-{time}")),
            src: Some(src.into()),
            src_port: Some(40000),
            dst: Some(dst.into()),
            dst_port: Some(80),
            protocol: Some("6".into()),
            reasons: Some(json!([{"feature": "Flow Duration"}])),
            fields: json!({"Src IP": src, "Flow Duration": "12"}).to_string(),
            verdict: None,
            verdict_time: None,
        }
    }

    /// What every backend must do alike: aggregate, page, filter, count, judge, purge.
    fn exercise(store: &mut Store) {
        let minute = 60_000_000;
        // Two alike within the window are one alert; a third 10 minutes later is another.
        let stored = store
            .write(
                vec![
                    alarm("10.0.0.1", "10.0.0.9", 1000, 0.7, Severity::Low),
                    alarm("10.0.0.1", "10.0.0.9", 1030, 0.9, Severity::High),
                    alarm("10.0.0.1", "10.0.0.9", 1600, 0.6, Severity::Low),
                    alarm("10.0.0.2", "10.0.0.9", 1001, 0.8, Severity::Medium),
                ],
                minute,
            )
            .unwrap();
        // Each alert touched, once, in the order first touched.
        assert_eq!(stored.len(), 3);
        assert_eq!((stored[0].count, stored[0].score), (2, 0.9));
        assert_eq!(stored[0].severity, Severity::High);
        assert_eq!(stored[0].last_seen, 1030 * 1_000_000);
        assert_eq!(stored[1].time, 1600 * 1_000_000);
        assert!(stored[0].id < stored[1].id && stored[1].id < stored[2].id);
        let all = store.list(&Filter::default(), 10, None).unwrap();
        assert_eq!(all.alerts.len(), 3);
        assert!(all.next.is_none());
        let times: Vec<i64> = all.alerts.iter().map(|a| a.time / 1_000_000).collect();
        assert_eq!(times, [1600, 1001, 1000], "newest first");
        assert_eq!(all.alerts[2], stored[0], "read back as stored");
        assert_eq!(all.alerts[0], stored[1]);
        // Keyset pages: two, then one, then none.
        let first = store.list(&Filter::default(), 2, None).unwrap();
        let cursor = parse_cursor(first.next.as_deref().unwrap()).unwrap();
        let second = store.list(&Filter::default(), 2, Some(cursor)).unwrap();
        assert_eq!(second.alerts.len(), 1);
        assert_eq!(second.alerts[0].id, stored[0].id);
        assert!(second.next.is_none());
        let high = Filter {
            severity: vec![Severity::High],
            ..Default::default()
        };
        assert_eq!(store.list(&high, 10, None).unwrap().alerts.len(), 1);
        let from_2 = Filter {
            src: Some("10.0.0.2".into()),
            since: Some(1001 * 1_000_000),
            ..Default::default()
        };
        assert_eq!(store.list(&from_2, 10, None).unwrap().alerts.len(), 1);
        // Counts per 10-minute bucket: 1000 s and 1001 s share [600, 1200).
        let buckets = store.stats(&Filter::default(), 10 * minute).unwrap();
        let summary: Vec<(i64, Severity, i64, i64)> = buckets
            .iter()
            .map(|b| (b.start / 1_000_000, b.severity, b.alerts, b.alarms))
            .collect();
        assert_eq!(
            summary,
            [
                (600, Severity::Medium, 1, 1),
                (600, Severity::High, 1, 2),
                (1200, Severity::Low, 1, 1)
            ]
        );
        // A later batch joins the open alert.
        let later = alarm("10.0.0.1", "10.0.0.9", 1650, 0.95, Severity::Low);
        let joined = store.write(vec![later], minute).unwrap();
        assert_eq!((joined[0].id, joined[0].count), (stored[1].id, 2));
        let judged = store
            .set_verdict(stored[2].id, Verdict::FalsePositive)
            .unwrap()
            .unwrap();
        assert_eq!(judged.verdict, Some(Verdict::FalsePositive));
        let open = Filter {
            verdict: Some(None),
            ..Default::default()
        };
        assert_eq!(store.list(&open, 10, None).unwrap().alerts.len(), 2);
        assert!(
            store
                .set_verdict(999_999, Verdict::Normal)
                .unwrap()
                .is_none()
        );
        assert_eq!(store.purge(1100 * 1_000_000).unwrap(), 2);
        assert_eq!(
            store
                .list(&Filter::default(), 10, None)
                .unwrap()
                .alerts
                .len(),
            1
        );
    }

    #[test]
    fn sqlite_aggregates_pages_filters_counts_and_purges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/alerts.sqlite");
        let url = path.to_str().unwrap();
        exercise(&mut Store::open(url).unwrap());
        // Opened again: migrations are not applied twice, and the data is there.
        let mut again = Store::open(url).unwrap();
        assert_eq!(
            again
                .list(&Filter::default(), 10, None)
                .unwrap()
                .alerts
                .len(),
            1
        );
    }

    /// Against the PostgreSQL `.ci/run` starts (`ANOMALY_TEST_POSTGRES`), in a fresh database.
    #[test]
    fn postgres_does_what_sqlite_does() {
        let Some(url) = crate::alerts::test_postgres("store") else {
            return;
        };
        exercise(&mut Store::open(&url).unwrap());
    }

    #[test]
    fn a_file_that_is_not_sqlite_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "not a database, just some text that is long enough").unwrap();
        let e = Store::open(path.to_str().unwrap()).err().unwrap();
        assert_eq!(crate::error::exit_code(&e), crate::error::EXIT_BAD_INPUT);
        assert!(format!("{e:#}").contains("notes.txt"), "{e:#}");
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            hide_password("postgres://ids:s3cret@db:5432/alerts"),
            "postgres://ids:***@db:5432/alerts"
        );
        assert_eq!(hide_password("alerts.sqlite"), "alerts.sqlite");
    }
}
