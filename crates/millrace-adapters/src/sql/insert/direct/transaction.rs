//! The commit transaction on the writer thread's connection: the fencing update of the
//! offsets row, the rows (prepared statements cached by shape), the dead letters.

use millrace_core::positions::{Position, TrackedBatch};
use rusqlite::TransactionBehavior;
use sqlx::sqlite::{Sqlite, SqliteArgumentValue};

use super::Writer;
use super::error::to_sqlx;
use crate::sql::insert::backend::{CommitOutcome, CommitPlan, SinkSql};
use crate::sql::insert::row::{InsertRow, RowValues, Target};

/// `INSERT … VALUES (?, …), … <on conflict>` for rows of `widths` values each.
fn insert_text(sql: &SinkSql, widths: impl ExactSizeIterator<Item = usize> + Clone) -> String {
    let values: usize = widths.clone().map(|n| n * 3 + 4).sum();
    let mut text = String::with_capacity(sql.insert.len() + values + 64);
    text.push_str(&sql.insert);
    text.push_str("VALUES ");
    for (row, columns) in widths.enumerate() {
        text.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            text.push_str(if column == 0 { "?" } else { ", ?" });
        }
        text.push(')');
    }
    if !sql.on_conflict.is_empty() {
        text.push(' ');
        text.push_str(&sql.on_conflict);
    }
    text
}

fn push_null(values: &mut Vec<SqliteArgumentValue<'_>>) {
    values.push(SqliteArgumentValue::Null);
}

/// The commit transaction: the fencing update of the offsets row, the rows, the dead letters.
pub(super) fn commit_on<P: Position, T: InsertRow<Sqlite>>(
    writer: &mut Writer,
    sql: &SinkSql,
    plan: &CommitPlan,
    batch: &TrackedBatch<P, T>,
) -> Result<CommitOutcome, sqlx::Error> {
    let Writer { conn, texts, .. } = writer;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(to_sqlx)?;
    let rows = batch.items();
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let fence = sql.fence();
    let fenced = tx
        .prepare_cached(&fence)
        .and_then(|mut update| {
            update.execute((
                plan.position.as_str(),
                plan.now_ms,
                count(rows.len() as u64),
                count(batch.dead_letters().len() as u64),
                count(batch.filtered()),
                plan.pipeline.as_str(),
                plan.source.as_str(),
                plan.epoch,
            ))
        })
        .map_err(to_sqlx)?;
    if fenced == 0 {
        // Dropping `tx` rolls back.
        return Ok(CommitOutcome::Fenced);
    }

    let mut inserted = 0u64;
    let mut values: Vec<SqliteArgumentValue<'_>> = Vec::new();
    let mut per_row: Vec<usize> = Vec::new();
    for chunk in rows.chunks(sql.rows_per_statement) {
        values.clear();
        per_row.clear();
        let mut error = None;
        for row in chunk {
            let mut bound = 0;
            row.push_values(&mut RowValues {
                target: Target::Values {
                    values: &mut values,
                    push_null,
                    bound: &mut bound,
                },
                first: true,
                error: &mut error,
            });
            if per_row.is_empty() {
                // The first row tells the width: room for the whole chunk at once.
                values.reserve(chunk.len().saturating_mul(bound));
            }
            per_row.push(bound);
        }
        if let Some(e) = error {
            return Err(sqlx::Error::Encode(e));
        }
        let columns = per_row.first().copied().unwrap_or(0);
        let mixed;
        let text: &str = if per_row.iter().all(|&n| n == columns) {
            texts
                .entry((chunk.len(), columns))
                .or_insert_with(|| insert_text(sql, std::iter::repeat_n(columns, chunk.len())))
        } else {
            // Rows of different widths: the statement says so (SQLite rejects it, as it does
            // through sqlx).
            mixed = insert_text(sql, per_row.iter().copied());
            &mixed
        };
        let mut insert = tx.prepare_cached(text).map_err(to_sqlx)?;
        for (i, value) in values.iter().enumerate() {
            let at = i + 1;
            match value {
                SqliteArgumentValue::Null => insert.raw_bind_parameter(at, rusqlite::types::Null),
                SqliteArgumentValue::Text(text) => insert.raw_bind_parameter(at, text.as_ref()),
                SqliteArgumentValue::Blob(blob) => insert.raw_bind_parameter(at, blob.as_ref()),
                SqliteArgumentValue::Double(x) => insert.raw_bind_parameter(at, *x),
                SqliteArgumentValue::Int(x) => insert.raw_bind_parameter(at, *x),
                SqliteArgumentValue::Int64(x) => insert.raw_bind_parameter(at, *x),
            }
            .map_err(to_sqlx)?;
        }
        inserted += insert.raw_execute().map_err(to_sqlx)? as u64;
    }

    if !batch.dead_letters().is_empty() {
        let text = sql.insert_dead_letter();
        let mut letter = tx.prepare_cached(&text).map_err(to_sqlx)?;
        for dead in batch.dead_letters() {
            letter
                .execute((
                    plan.pipeline.as_str(),
                    plan.source.as_str(),
                    dead.position.to_text(),
                    dead.reason.as_str(),
                ))
                .map_err(to_sqlx)?;
        }
    }
    tx.commit().map_err(to_sqlx)?;
    Ok(CommitOutcome::Committed {
        rows_inserted: inserted,
    })
}
