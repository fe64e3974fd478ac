//! `losses` rows into PostgreSQL, inside the batch's transaction, where a row the server
//! refuses (a site's trigger or CHECK on `losses`) is left out instead of failing the batch.
//!
//! Invariants:
//! - All the batch's loss rows go in inside one savepoint (`ON CONFLICT DO NOTHING` on the key,
//!   so a replayed batch adds nothing). Only if one of them is refused
//!   ([`refused`](super::pg_rows::refused)) is the savepoint rolled back and every row tried
//!   again in a savepoint of its own, to find which: the others are kept, the refused ones are
//!   returned with the server's message. Any other error fails the batch as a whole.

use tokio_postgres::Client;

use super::pg_rows::{refused, server_message, ts};
use super::row::LossRow;

const INSERT: &str = "INSERT INTO losses (time, host, stream, seq, nflog_group, count, reason,
    seq_global_first, seq_global_last) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT DO NOTHING";

/// Insert `rows` (each with its reason column); return those the server refused, with its
/// message.
pub async fn insert(
    tx: &Client,
    rows: Vec<(LossRow, String)>,
    host: &str,
    stream: &str,
) -> Result<Vec<(LossRow, String, String)>, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ins = tx.prepare(INSERT).await?;
    let one = |l: &LossRow, reason: &str| {
        let l = l.clone();
        let reason = reason.to_string();
        let ins = ins.clone();
        async move {
            tx.execute(
                &ins,
                &[
                    &ts(l.time),
                    &host,
                    &stream,
                    &(l.seq as i64),
                    &l.nflog_group.map(i32::from),
                    &(l.count as i64),
                    &reason,
                    &l.seq_global.map(|g| i64::from(g.0)),
                    &l.seq_global.map(|g| i64::from(g.1)),
                ],
            )
            .await
        }
    };
    tx.batch_execute("SAVEPOINT fwlog_losses").await?;
    let mut failed = None;
    for (l, reason) in &rows {
        if let Err(e) = one(l, reason).await {
            failed = Some(e);
            break;
        }
    }
    match failed {
        None => {
            tx.batch_execute("RELEASE SAVEPOINT fwlog_losses").await?;
            return Ok(Vec::new());
        }
        Some(e) if !refused(&e) => return Err(e),
        Some(_) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT fwlog_losses")
                .await?
        }
    }
    let mut out = Vec::new();
    for (l, reason) in rows {
        tx.batch_execute("SAVEPOINT fwlog_loss").await?;
        match one(&l, &reason).await {
            Ok(_) => tx.batch_execute("RELEASE SAVEPOINT fwlog_loss").await?,
            Err(e) if refused(&e) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT fwlog_loss").await?;
                out.push((l, reason, server_message(&e)));
            }
            Err(e) => return Err(e),
        }
    }
    tx.batch_execute("RELEASE SAVEPOINT fwlog_losses").await?;
    Ok(out)
}
