//! Exactly once at the edges, with real processes and real databases: the `sql` sink's
//! contract under SIGKILL and under concurrent runs, on SQLite and PostgreSQL.
//!
//! This binary has its own `main` (`harness = false` in `Cargo.toml`). Run plainly
//! (`cargo test --features sql,json,fs --test delivery_processes`), it is the **parent**: it
//! generates a JSON-lines input of 20,000 lines (good records, malformed and invalid lines,
//! blank lines, some `\r\n`), computes the reference output in-process, and runs *itself* as
//! the pipeline's **children** (`MILLRACE_DELIVERY_CHILD=1`):
//!
//! ```text
//! claim ─ fs::lines(..).resume_after(claim.resume_after()).tracked() ─ json::decode_tracked
//!   ─ dead_letter_errors ─ validate ─ batch_within(size, time) ─ claim.run  (rows + dead letters
//!   + position in one transaction, into a table with NO unique key)
//! ```
//!
//! Checks, on each database:
//! - **crash loop**: ≥ 20 SIGKILLs at seeded random moments across one run, every restart with
//!   other batch sizes and times, then a run to completion: the rows (ordered by id) and the
//!   dead letters equal the reference (hashes printed), and the offsets row's cumulative
//!   `committed + dead_lettered + filtered` equals the number of lines;
//! - **concurrent runs**: two children started together, and staggered by 0.5–2 s: each exits 0
//!   (ran) or 3 (refused with `InsertError::Held`, naming the holder's pid), never anything
//!   else; after a final run the table equals the reference.
//!
//! `MILLRACE_DELIVERY_SEED=N` repeats a run's random choices. PostgreSQL comes from
//! `MILLRACE_TEST_POSTGRES_URL` (`scripts/test.sh` starts one); without it the PostgreSQL
//! checks fail unless `MILLRACE_SKIP_POSTGRES=1`.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use millrace::adapters::fs::{self, Line, LineError, LinePosition};
use millrace::adapters::json;
use millrace::adapters::sql::{Backend, BatchInsert, InsertError};
use millrace::positions::{Entry, Position as _, Positioned, Tracked};
use sqlx::{Database, Executor, FromRow, IntoArguments, Pool, Postgres, Sqlite};

/// Lines in the generated input.
const LINES: usize = 20_000;
/// SIGKILLs in each crash loop (at least).
const KILLS: usize = 24;
/// Exit code of a child refused because another process holds the pipeline.
const REFUSED: i32 = 3;

/// One output row: `(id, name, value, line)`.
type Row = (i64, String, i64, i64);

#[derive(serde::Deserialize)]
struct Record {
    id: i64,
    name: String,
    value: i64,
}

/// The pipeline's stages between the source and the batches, shared by the children and by the
/// parent's in-process reference run.
fn stages<S>(
    lines: Tracked<S>,
) -> Tracked<impl futures::Stream<Item = Positioned<LinePosition, Row>>>
where
    S: futures::Stream<Item = Positioned<LinePosition, Result<Line, LineError>>>,
{
    json::decode_tracked::<Record, _>(lines)
        .dead_letter_errors()
        .validate(|d| {
            if d.value.value < 0 {
                Err(format!(
                    "line {}: value {} is negative",
                    d.line, d.value.value
                ))
            } else {
                Ok(())
            }
        })
        .map(|d| (d.value.id, d.value.name, d.value.value, d.line as i64))
}

// ---------------------------------------------------------------------------------------------
// Child

/// What a child runs, from its environment.
struct ChildConfig {
    db: String,
    table: String,
    pipeline: String,
    input: PathBuf,
    batch_size: usize,
    batch_time: Duration,
    /// A pause after each batch, before its commit (to make concurrent runs overlap).
    pause: Duration,
    /// Hang before committing the batch that ends the input (a crash-loop child is always
    /// killed, never completes the run).
    stall_at_end: bool,
}

impl ChildConfig {
    fn from_env() -> Self {
        let var =
            |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("child: {name} is not set"));
        let num = |name: &str| -> u64 {
            var(name)
                .parse()
                .unwrap_or_else(|e| panic!("child: {name}: {e}"))
        };
        ChildConfig {
            db: var("MILLRACE_DELIVERY_DB"),
            table: var("MILLRACE_DELIVERY_TABLE"),
            pipeline: var("MILLRACE_DELIVERY_PIPELINE"),
            input: PathBuf::from(var("MILLRACE_DELIVERY_INPUT")),
            batch_size: num("MILLRACE_DELIVERY_BATCH_SIZE") as usize,
            batch_time: Duration::from_millis(num("MILLRACE_DELIVERY_BATCH_MS")),
            pause: Duration::from_millis(num("MILLRACE_DELIVERY_PAUSE_MS")),
            stall_at_end: std::env::var_os("MILLRACE_DELIVERY_STALL_AT_END").is_some(),
        }
    }
}

fn child() -> i32 {
    let cfg = ChildConfig::from_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if cfg.db.starts_with("postgres") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(3)
                .connect(&cfg.db)
                .await
                .unwrap_or_else(|e| panic!("child: cannot connect to {}: {e}", cfg.db));
            run_child(pool, &cfg).await
        } else {
            run_child(sqlite_pool(&cfg.db).await, &cfg).await
        }
    })
}

async fn sqlite_pool(path: &str) -> Pool<Sqlite> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(20));
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(3)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("cannot open {path}: {e}"))
}

async fn run_child<DB>(pool: Pool<DB>, cfg: &ChildConfig) -> i32
where
    DB: Backend,
    Row: millrace::adapters::sql::InsertRow<DB>,
{
    let sink = BatchInsert::new(
        pool,
        cfg.pipeline.as_str(),
        format!("INSERT INTO {} (id, name, value, line) ", cfg.table),
    )
    .offsets_table(format!("{}_offsets", cfg.table))
    .dead_letter_table(format!("{}_dead", cfg.table));
    let claim = match sink.claim::<LinePosition>("input.jsonl").await {
        Ok(claim) => claim,
        Err(e @ InsertError::Held { .. }) => {
            println!("REFUSED: {e}");
            return REFUSED;
        }
        Err(e) => {
            eprintln!("child: claim failed: {e}");
            return 1;
        }
    };
    let lines = fs::lines(&cfg.input)
        .resume_after(claim.resume_after().copied())
        .tracked();
    let accounting = lines.accounting();
    let pause = cfg.pause;
    let end = match (cfg.stall_at_end, std::fs::metadata(&cfg.input)) {
        (true, Ok(meta)) => meta.len(),
        _ => u64::MAX,
    };
    let batches = stages(lines)
        .batch_within(cfg.batch_size, cfg.batch_time)
        .via(|s| {
            s.then(move |batch| async move {
                tokio::time::sleep(pause).await;
                if batch.position().offset == end {
                    std::future::pending::<()>().await;
                }
                batch
            })
        });
    match claim.run(batches).await {
        Ok(report) => match accounting.check() {
            Ok(balance) => {
                println!(
                    "DONE batches={} rows={} dead={} filtered={} ({balance})",
                    report.batches_committed,
                    report.rows_inserted,
                    report.dead_lettered,
                    report.filtered
                );
                0
            }
            Err(e) => {
                eprintln!("child: {e}");
                4
            }
        },
        Err(e) => {
            eprintln!("child: {e}");
            1
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Input and reference

/// splitmix64: small, seeded, good enough to pick moments and sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// What the generator knows about the input: the good rows, and where the bad lines are.
struct Input {
    path: PathBuf,
    rows: Vec<Row>,
    bad: Vec<LinePosition>,
    blank: u64,
}

fn generate(path: &Path, rng: &mut Rng) -> Input {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let (mut rows, mut bad, mut blank, mut offset) = (Vec::new(), Vec::new(), 0, 0u64);
    for line in 1..=LINES as u64 {
        let id = line as i64 * 3 + 7;
        let roll = rng.range(0, 999);
        let text = match roll {
            0..=9 => format!(r#"{{"id": {id}, "name": "truncated"#),
            10..=14 => "not json at all".to_owned(),
            15..=19 => format!(r#"{{"id": "{id}", "name": "wrong type", "value": 1}}"#),
            20..=24 => format!(r#"{{"id": {id}, "name": "no value"}}"#),
            25..=34 => {
                format!(r#"{{"id": {id}, "name": "negative", "value": -{}}}"#, line)
            }
            35..=44 => String::new(),
            _ => {
                let name = format!("item {line} «{}» \"q\"", roll % 7);
                let value = (rng.next() % 1_000_000) as i64;
                rows.push((id, name.clone(), value, line as i64));
                serde_json::json!({"id": id, "name": name, "value": value}).to_string()
            }
        };
        let end = if roll % 97 == 0 { "\r\n" } else { "\n" };
        out.write_all(text.as_bytes()).unwrap();
        out.write_all(end.as_bytes()).unwrap();
        offset += (text.len() + end.len()) as u64;
        match roll {
            0..=34 => bad.push(LinePosition { offset, line }),
            35..=44 => blank += 1,
            _ => {}
        }
    }
    out.flush().unwrap();
    Input {
        path: path.to_owned(),
        rows,
        bad,
        blank,
    }
}

/// The expected content of the tables.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Content {
    /// Ordered by id.
    rows: Vec<Row>,
    /// `(position, reason)`, ordered by position.
    dead: Vec<(String, String)>,
}

impl Content {
    fn rows_hash(&self) -> u64 {
        let mut h = Fnv::new();
        for (id, name, value, line) in &self.rows {
            h.write(format!("{id}\t{name}\t{value}\t{line}\n").as_bytes());
        }
        h.0
    }

    fn dead_hash(&self) -> u64 {
        let mut h = Fnv::new();
        for (position, reason) in &self.dead {
            h.write(format!("{position}\t{reason}\n").as_bytes());
        }
        h.0
    }
}

/// FNV-1a, 64 bits: a stable content hash (the same in every process and Rust version).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn sort_dead(dead: &mut [(String, String)]) {
    dead.sort_by_key(|(position, _)| {
        LinePosition::from_text(position).expect("dead-letter positions are line positions")
    });
}

/// Runs the same stages in-process over the whole input (no database) and checks the result
/// against what the generator wrote.
async fn reference(input: &Input) -> Content {
    let entries: Vec<_> = stages(fs::lines(&input.path).tracked()).collect().await;
    let (mut rows, mut dead, mut filtered) = (Vec::new(), Vec::new(), 0);
    for Positioned { position, entry } in entries {
        match entry {
            Entry::Item(row) => rows.push(row),
            Entry::Dead(reason) => dead.push((position.to_text(), reason)),
            Entry::Filtered => filtered += 1,
        }
    }
    rows.sort();
    sort_dead(&mut dead);
    let mut expected_rows = input.rows.clone();
    expected_rows.sort();
    assert_eq!(
        rows, expected_rows,
        "reference rows differ from the generated ones"
    );
    let bad: Vec<String> = input.bad.iter().map(|p| p.to_text()).collect();
    let dead_at: Vec<String> = dead.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        dead_at, bad,
        "reference dead letters are not the generated bad lines"
    );
    assert_eq!(filtered, input.blank);
    Content { rows, dead }
}

// ---------------------------------------------------------------------------------------------
// Parent: databases

#[derive(Clone)]
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

/// The tables of one scenario.
struct Names {
    table: String,
    pipeline: String,
}

/// What the tables hold after a scenario.
struct State {
    content: Content,
    /// `committed + dead_lettered + filtered` and the position, from the offsets row.
    counts: (i64, i64, i64),
    position: String,
}

impl Db {
    fn name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "SQLite",
            Db::Postgres(_) => "PostgreSQL",
        }
    }

    fn url(&self) -> String {
        match self {
            Db::Sqlite(path) => path.display().to_string(),
            Db::Postgres(url) => url.clone(),
        }
    }

    async fn create(&self, names: &Names) {
        let sql = format!(
            "CREATE TABLE {} (id BIGINT NOT NULL, name TEXT NOT NULL, value BIGINT NOT NULL, \
             line BIGINT NOT NULL)",
            names.table
        );
        match self {
            Db::Sqlite(path) => {
                let pool = sqlite_pool(&path.display().to_string()).await;
                sqlx::query(&sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Db::Postgres(url) => {
                let pool = Pool::<Postgres>::connect(url).await.unwrap();
                sqlx::query(&sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    /// `committed + dead_lettered + filtered` of the offsets row (0 before the first claim).
    async fn done(&self, names: &Names) -> i64 {
        let sql = format!(
            "SELECT committed + dead_lettered + filtered FROM {}_offsets WHERE pipeline = '{}'",
            names.table, names.pipeline
        );
        let done = match self {
            Db::Sqlite(path) => {
                let pool = sqlite_pool(&path.display().to_string()).await;
                let done = sqlx::query_scalar::<_, i64>(&sql).fetch_one(&pool).await;
                pool.close().await;
                done
            }
            Db::Postgres(url) => {
                let pool = Pool::<Postgres>::connect(url).await.unwrap();
                let done = sqlx::query_scalar::<_, i64>(&sql).fetch_one(&pool).await;
                pool.close().await;
                done
            }
        };
        done.unwrap_or(0)
    }

    async fn state(&self, names: &Names) -> State {
        match self {
            Db::Sqlite(path) => {
                let pool = sqlite_pool(&path.display().to_string()).await;
                let state = read_state(&pool, names).await;
                pool.close().await;
                state
            }
            Db::Postgres(url) => {
                let pool = Pool::<Postgres>::connect(url).await.unwrap();
                let state = read_state(&pool, names).await;
                pool.close().await;
                state
            }
        }
    }
}

async fn read_state<DB: Database>(pool: &Pool<DB>, names: &Names) -> State
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    Row: for<'r> FromRow<'r, DB::Row>,
    (String, String): for<'r> FromRow<'r, DB::Row>,
    (i64, i64, i64, String): for<'r> FromRow<'r, DB::Row>,
{
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT id, name, value, line FROM {} ORDER BY id, line",
        names.table
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    let mut dead: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT position, reason FROM {}_dead WHERE pipeline = '{}'",
        names.table, names.pipeline
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    sort_dead(&mut dead);
    let (committed, dead_lettered, filtered, position): (i64, i64, i64, String) =
        sqlx::query_as(&format!(
            "SELECT committed, dead_lettered, filtered, position FROM {}_offsets WHERE \
             pipeline = '{}'",
            names.table, names.pipeline
        ))
        .fetch_one(pool)
        .await
        .unwrap();
    State {
        content: Content { rows, dead },
        counts: (committed, dead_lettered, filtered),
        position,
    }
}

// ---------------------------------------------------------------------------------------------
// Parent: children

/// How one child runs.
#[derive(Debug, Clone, Copy)]
struct Knobs {
    batch_size: u64,
    batch_ms: u64,
    pause_ms: u64,
    stall_at_end: bool,
}

fn spawn(db: &Db, names: &Names, input: &Path, knobs: Knobs) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    if knobs.stall_at_end {
        command.env("MILLRACE_DELIVERY_STALL_AT_END", "1");
    }
    command
        .env("MILLRACE_DELIVERY_CHILD", "1")
        .env("MILLRACE_DELIVERY_DB", db.url())
        .env("MILLRACE_DELIVERY_TABLE", &names.table)
        .env("MILLRACE_DELIVERY_PIPELINE", &names.pipeline)
        .env("MILLRACE_DELIVERY_INPUT", input)
        .env("MILLRACE_DELIVERY_BATCH_SIZE", knobs.batch_size.to_string())
        .env("MILLRACE_DELIVERY_BATCH_MS", knobs.batch_ms.to_string())
        .env("MILLRACE_DELIVERY_PAUSE_MS", knobs.pause_ms.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` to exit, at most `limit`; `None` if it is still running.
fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn output(child: &mut Child) -> String {
    let mut text = String::new();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut pipe = pipe;
        pipe.read_to_string(&mut text).unwrap();
    }
    text
}

/// A run to completion, which must succeed.
fn complete(db: &Db, names: &Names, input: &Path, knobs: Knobs) -> Result<String, String> {
    let mut child = spawn(db, names, input, knobs);
    let status = wait_for(&mut child, Duration::from_secs(60))
        .ok_or("the completing run did not finish within 60 s")?;
    let out = output(&mut child);
    if status.success() {
        Ok(out.trim().to_owned())
    } else {
        Err(format!("the completing run failed ({status}): {out}"))
    }
}

/// Compares the tables with the reference; the summary line on success.
fn verify(
    rt: &tokio::runtime::Runtime,
    db: &Db,
    names: &Names,
    reference: &Content,
) -> Result<String, String> {
    let state = rt.block_on(db.state(names));
    let (committed, dead_lettered, filtered) = state.counts;
    let done = committed + dead_lettered + filtered;
    let got = &state.content;
    let summary = format!(
        "rows {} (reference {}), rows hash {:016x} (reference {:016x}), dead letters {} \
         (reference {}), dead-letter hash {:016x} (reference {:016x}); offsets row: committed \
         {committed} + dead-lettered {dead_lettered} + filtered {filtered} = {done} of {LINES} \
         lines",
        got.rows.len(),
        reference.rows.len(),
        got.rows_hash(),
        reference.rows_hash(),
        got.dead.len(),
        reference.dead.len(),
        got.dead_hash(),
        reference.dead_hash(),
    );
    if got.rows != reference.rows {
        let lost = reference
            .rows
            .iter()
            .filter(|r| !got.rows.contains(r))
            .count();
        let extra = got.rows.len() as i64 - reference.rows.len() as i64 + lost as i64;
        return Err(format!(
            "rows differ ({lost} lost, {extra} extra): {summary}"
        ));
    }
    if got.dead != reference.dead {
        return Err(format!("dead letters differ: {summary}"));
    }
    if done != LINES as i64 {
        return Err(format!("the offsets row does not balance: {summary}"));
    }
    let last = LinePosition::from_text(&state.position);
    if last.map(|p| p.line) != Some(LINES as u64) {
        return Err(format!(
            "the committed position is {:?}, not the last line: {summary}",
            state.position
        ));
    }
    Ok(summary)
}

// ---------------------------------------------------------------------------------------------
// Parent: scenarios

fn unique(prefix: &str, rng: &mut Rng) -> Names {
    let tag = format!("{}_{:x}", std::process::id(), rng.next() & 0xff_ffff);
    Names {
        table: format!("{prefix}_{tag}"),
        pipeline: format!("{prefix}_pipeline_{tag}"),
    }
}

/// ≥ [`KILLS`] SIGKILLs at random moments, each restart with other batch sizes and times, then
/// a run to completion. A killed child never completes the run: it hangs before committing the
/// batch that ends the input, so every child is killed (a kill there re-reads the last batch).
fn crash_loop(
    rt: &tokio::runtime::Runtime,
    db: &Db,
    input: &Input,
    reference: &Content,
    rng: &mut Rng,
) -> Result<String, String> {
    let names = unique("crash", rng);
    rt.block_on(db.create(&names));
    let started = Instant::now();
    let (mut kills, mut runs) = (0, 0);
    let mut sizes = (u64::MAX, 0);
    // Kill moments are uniform in 10..=`window` ms after the start; the window adapts so that
    // the kills spread over the whole run (shorter when the run is ahead of the kills).
    let mut window = 120.0_f64;
    let mut progress = Vec::new();
    while kills < KILLS {
        let knobs = Knobs {
            batch_size: rng.range(8, 300),
            batch_ms: rng.range(1, 40),
            pause_ms: rng.range(0, 6),
            stall_at_end: true,
        };
        sizes = (sizes.0.min(knobs.batch_size), sizes.1.max(knobs.batch_size));
        let mut child = spawn(db, &names, &input.path, knobs);
        runs += 1;
        let moment = Duration::from_millis(rng.range(10, window as u64));
        match wait_for(&mut child, moment) {
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
            }
            Some(status) => {
                return Err(format!(
                    "a child failed ({status}) before its SIGKILL: {}",
                    output(&mut child)
                ));
            }
        }
        let done = rt.block_on(db.done(&names));
        progress.push(done);
        let schedule = kills as f64 / (KILLS + 2) as f64;
        let fraction = done as f64 / LINES as f64;
        window = if fraction > schedule {
            window * 0.8
        } else {
            window * 1.15
        }
        .clamp(25.0, 600.0);
    }
    let before = rt.block_on(db.state(&names));
    let (c, d, f) = before.counts;
    let done = complete(
        db,
        &names,
        &input.path,
        Knobs {
            batch_size: rng.range(50, 500),
            batch_ms: rng.range(1, 40),
            pause_ms: 0,
            stall_at_end: false,
        },
    )?;
    let summary = verify(rt, db, &names, reference)?;
    Ok(format!(
        "{kills} SIGKILLs over {runs} runs (batch sizes {}..={}, times 1..=40 ms; lines done \
         after each kill: {progress:?}), {} of {LINES} lines done before the last run ({done}), \
         in {:.1} s; {summary}",
        sizes.0,
        sizes.1,
        c + d + f,
        started.elapsed().as_secs_f64()
    ))
}

/// Two children on one pipeline, the second started `stagger` after the first; then a run to
/// completion.
fn concurrent(
    rt: &tokio::runtime::Runtime,
    db: &Db,
    input: &Input,
    reference: &Content,
    rng: &mut Rng,
    stagger: Duration,
) -> Result<String, String> {
    let names = unique("concurrent", rng);
    rt.block_on(db.create(&names));
    // Slow enough (≈ 2.5 s) that the second child starts while the first runs.
    let knobs = Knobs {
        batch_size: 200,
        batch_ms: 50,
        pause_ms: 25,
        stall_at_end: false,
    };
    let mut first = spawn(db, &names, &input.path, knobs);
    std::thread::sleep(stagger);
    let mut second = spawn(db, &names, &input.path, knobs);
    let mut outcomes = Vec::new();
    let pids = [first.id(), second.id()];
    for (i, child) in [&mut first, &mut second].into_iter().enumerate() {
        let status = wait_for(child, Duration::from_secs(60))
            .ok_or("a concurrent child did not finish within 60 s")?;
        let out = output(child);
        let other = pids[1 - i];
        match status.code() {
            Some(0) => outcomes.push("ran".to_owned()),
            Some(REFUSED) => {
                if !out.contains(&format!("pid {other} ")) {
                    return Err(format!(
                        "a refused child does not name the holder (pid {other}): {out}"
                    ));
                }
                outcomes.push("refused".to_owned());
            }
            _ => return Err(format!("a concurrent child exited with {status}: {out}")),
        }
    }
    let refusal = if outcomes.iter().any(|o| o == "refused") {
        "one refused, naming the holder's pid"
    } else {
        "no overlap: both ran"
    };
    complete(db, &names, &input.path, knobs)?;
    let summary = verify(rt, db, &names, reference)?;
    Ok(format!(
        "second started {:.2} s after the first: first {}, second {} ({refusal}); after the \
         completing run: {summary}",
        stagger.as_secs_f64(),
        outcomes[0],
        outcomes[1]
    ))
}

fn main() {
    if std::env::var_os("MILLRACE_DELIVERY_CHILD").is_some() {
        std::process::exit(child());
    }
    let started = Instant::now();
    let seed = std::env::var("MILLRACE_DELIVERY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("delivery_processes: seed {seed} (MILLRACE_DELIVERY_SEED={seed} repeats it)");
    let mut rng = Rng(seed);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = generate(&dir.path().join("input.jsonl"), &mut rng);
    let reference = rt.block_on(reference(&input));
    println!(
        "input: {LINES} lines: {} good, {} bad (malformed, wrong type, missing field, negative), \
         {} blank; reference rows hash {:016x}, dead-letter hash {:016x}",
        reference.rows.len(),
        reference.dead.len(),
        input.blank,
        reference.rows_hash(),
        reference.dead_hash()
    );

    let mut dbs = vec![Db::Sqlite(dir.path().join("delivery.db"))];
    match std::env::var("MILLRACE_TEST_POSTGRES_URL") {
        Ok(url) => dbs.push(Db::Postgres(url)),
        Err(_) if std::env::var("MILLRACE_SKIP_POSTGRES").as_deref() == Ok("1") => {
            println!(
                "SKIPPED: PostgreSQL (MILLRACE_SKIP_POSTGRES=1, no MILLRACE_TEST_POSTGRES_URL)"
            );
        }
        Err(_) => {
            println!(
                "FAILED: MILLRACE_TEST_POSTGRES_URL is not set: start a throwaway server with \
                 `source scripts/services.sh && start_postgres`, or set MILLRACE_SKIP_POSTGRES=1"
            );
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    }

    let (mut passed, mut failed) = (0, 0);
    let mut report =
        |name: String, result: std::thread::Result<Result<String, String>>| match result {
            Ok(Ok(summary)) => {
                passed += 1;
                println!("ok: {name}: {summary}");
            }
            Ok(Err(e)) => {
                failed += 1;
                println!("FAILED: {name}: {e}");
            }
            Err(panic) => {
                failed += 1;
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                println!("FAILED: {name}: panicked: {msg}");
            }
        };
    for db in &dbs {
        let guarded = |f: &mut dyn FnMut() -> Result<String, String>| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        };
        report(
            format!("{} crash loop", db.name()),
            guarded(&mut || crash_loop(&rt, db, &input, &reference, &mut rng)),
        );
        report(
            format!("{} concurrent runs started together", db.name()),
            guarded(&mut || concurrent(&rt, db, &input, &reference, &mut rng, Duration::ZERO)),
        );
        for _ in 0..2 {
            let stagger = Duration::from_millis(rng.range(500, 2000));
            report(
                format!("{} concurrent runs staggered", db.name()),
                guarded(&mut || concurrent(&rt, db, &input, &reference, &mut rng, stagger)),
            );
        }
    }
    println!(
        "delivery_processes finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
