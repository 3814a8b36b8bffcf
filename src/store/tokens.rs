//! API tokens: each kept as its SHA-256 only, with the name and role it was
//! given; revoked, never deleted, so the audit log's names stay meaningful.

use rusqlite::{params, OptionalExtension};

use super::traits::*;
use super::{Store, StoreError};

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        role: row.get(2)?,
        created_at: row.get(3)?,
        revoked_at: row.get(4)?,
    })
}

impl TokenStore for Store {
    fn add_token(&self, name: &str, role: &str, hash: &[u8], now: i64) -> Result<i64, StoreError> {
        let _turn = self.turn();
        let connection = self.connect()?;
        connection.execute(
            "INSERT INTO api_tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, role, hash, now],
        )?;
        Ok(connection.last_insert_rowid())
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let connection = self.connect()?;
        let mut statement = connection
            .prepare("SELECT id, name, role, created_at, revoked_at FROM api_tokens ORDER BY id")?;
        let rows = statement.query_map([], token_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn revoke_token(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        let _turn = self.turn();
        let connection = self.connect()?;
        Ok(connection.execute(
            "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now],
        )? == 1)
    }

    fn token_by_hash(&self, hash: &[u8]) -> Result<Option<TokenRecord>, StoreError> {
        let connection = self.connect()?;
        Ok(connection
            .query_row(
                "SELECT id, name, role, created_at, revoked_at FROM api_tokens WHERE hash = ?1",
                [hash],
                token_from_row,
            )
            .optional()?)
    }
}
