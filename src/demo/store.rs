//! The demo backend's storage: one SQLite file, one connection behind a mutex.
//!
//! Documents are stored as the exact text the backend received, never re-serialised, so
//! what the proxy sent is byte for byte what a test reads back (from HTTP or from the file).
//! The journal mode is the rollback journal, not WAL, so every committed row lives in the
//! one database file. Table and column names are part of what tests read; keep them stable.
//!
//! Every method blocks on SQLite: call them from `spawn_blocking`.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

/// A document collection of the demo shop. Each has its own table of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Collection {
    Customers,
    Subscriptions,
}

impl Collection {
    /// The collection named by a URL path segment, if it is one of ours.
    pub(super) fn from_name(name: &str) -> Option<Self> {
        match name {
            "customers" => Some(Self::Customers),
            "subscriptions" => Some(Self::Subscriptions),
            _ => None,
        }
    }

    /// The URL segment, which is also the table name (a fixed identifier, safe in SQL).
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Customers => "customers",
            Self::Subscriptions => "subscriptions",
        }
    }
}

/// A stored upload: the bytes and the content type they came with.
pub(super) struct Upload {
    pub(super) content_type: String,
    pub(super) body: Vec<u8>,
}

/// The SQLite database; cheap to clone, all clones share the one connection.
#[derive(Clone)]
pub(super) struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if missing) the database file and its tables.
    pub(super) fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        // The rollback journal keeps all data in the one file once a statement commits.
        conn.pragma_update(None, "journal_mode", "DELETE")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        for collection in [Collection::Customers, Collection::Subscriptions] {
            let table = collection.name();
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                     id INTEGER PRIMARY KEY,
                     doc TEXT NOT NULL,
                     email TEXT
                 );
                 CREATE INDEX IF NOT EXISTS {table}_email ON {table} (email);"
            ))?;
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS uploads (
                 id INTEGER PRIMARY KEY,
                 content_type TEXT NOT NULL,
                 sha256 TEXT NOT NULL,
                 body BLOB NOT NULL
             );",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic elsewhere cannot leave SQLite half-written, so a poisoned lock is usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Inserts a document and returns its new id.
    pub(super) fn insert(
        &self,
        collection: Collection,
        doc: &str,
        email: Option<&str>,
    ) -> rusqlite::Result<i64> {
        let conn = self.conn();
        let sql = format!(
            "INSERT INTO {} (doc, email) VALUES (?1, ?2)",
            collection.name()
        );
        conn.execute(&sql, params![doc, email])?;
        Ok(conn.last_insert_rowid())
    }

    /// The stored document with this id, verbatim.
    pub(super) fn get(&self, collection: Collection, id: i64) -> rusqlite::Result<Option<String>> {
        let sql = format!("SELECT doc FROM {} WHERE id = ?1", collection.name());
        self.conn()
            .query_row(&sql, [id], |row| row.get(0))
            .optional()
    }

    /// All documents in id order, or only those whose email column equals `email`.
    pub(super) fn list(
        &self,
        collection: Collection,
        email: Option<&str>,
    ) -> rusqlite::Result<Vec<String>> {
        let conn = self.conn();
        let table = collection.name();
        let docs = match email {
            Some(email) => {
                let sql = format!("SELECT doc FROM {table} WHERE email = ?1 ORDER BY id");
                let mut stmt = conn.prepare(&sql)?;
                let rows = stmt.query_map([email], |row| row.get(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()?
            }
            None => {
                let mut stmt = conn.prepare(&format!("SELECT doc FROM {table} ORDER BY id"))?;
                let rows = stmt.query_map([], |row| row.get(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()?
            }
        };
        Ok(docs)
    }

    /// Replaces a document; `false` if there was none with this id.
    pub(super) fn replace(
        &self,
        collection: Collection,
        id: i64,
        doc: &str,
        email: Option<&str>,
    ) -> rusqlite::Result<bool> {
        let sql = format!(
            "UPDATE {} SET doc = ?1, email = ?2 WHERE id = ?3",
            collection.name()
        );
        Ok(self.conn().execute(&sql, params![doc, email, id])? > 0)
    }

    /// Deletes a document; `false` if there was none with this id.
    pub(super) fn delete(&self, collection: Collection, id: i64) -> rusqlite::Result<bool> {
        let sql = format!("DELETE FROM {} WHERE id = ?1", collection.name());
        Ok(self.conn().execute(&sql, [id])? > 0)
    }

    /// Stores an upload and returns its new id.
    pub(super) fn insert_upload(
        &self,
        content_type: &str,
        sha256_hex: &str,
        body: &[u8],
    ) -> rusqlite::Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO uploads (content_type, sha256, body) VALUES (?1, ?2, ?3)",
            params![content_type, sha256_hex, body],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The upload with this id.
    pub(super) fn get_upload(&self, id: i64) -> rusqlite::Result<Option<Upload>> {
        self.conn()
            .query_row(
                "SELECT content_type, body FROM uploads WHERE id = ?1",
                [id],
                |row| {
                    Ok(Upload {
                        content_type: row.get(0)?,
                        body: row.get(1)?,
                    })
                },
            )
            .optional()
    }
}
