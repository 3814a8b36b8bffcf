//! API tokens: each kept as its SHA-256 only, with the name and role it was
//! given; revoked, never deleted, so the audit log's names stay meaningful.

use super::db::{args, Db, Row};

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

fn token_from_row(row: &Row) -> Result<TokenRecord, StoreError> {
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
        self.transact(|db| {
            db.insert(
                "INSERT INTO api_tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
                args![name, role, hash, now],
            )
        })
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_all(
            "SELECT id, name, role, created_at, revoked_at FROM api_tokens ORDER BY id",
            args![],
            token_from_row,
        )
    }

    fn revoke_token(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        let changed = self.transact(|db| {
            db.execute(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                args![id, now],
            )
        })?;
        Ok(changed == 1)
    }

    fn token_by_hash(&self, hash: &[u8]) -> Result<Option<TokenRecord>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_opt(
            "SELECT id, name, role, created_at, revoked_at FROM api_tokens WHERE hash = ?1",
            args![hash],
            token_from_row,
        )
    }
}
