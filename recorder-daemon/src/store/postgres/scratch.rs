//! A throw-away database on a PostgreSQL server: each test, and the load benchmark, gets its
//! own (`CREATE DATABASE <prefix>_<random>`), dropped when the value is dropped.

use postgres::{Client, NoTls};

use super::{blocking, PgStore};
use crate::store::{StoreError, StoreResult};

/// A database created for one test or benchmark run; dropped (connections and all) on drop.
pub struct ScratchDb {
    admin: postgres::Config,
    #[cfg(test)]
    admin_url: String,
    name: String,
}

#[cfg(test)]
/// `url` with its database replaced by `name` (URL form only: `postgres://auth@host/db?opts`).
fn with_dbname(url: &str, name: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    Some(format!("{scheme}://{authority}/{name}{query}"))
}

fn admin_client(admin: &postgres::Config) -> StoreResult<Client> {
    Ok(admin.connect(NoTls)?)
}

impl ScratchDb {
    /// Creates `<prefix>_<16 hex digits>` through `admin_url`, a role allowed to create
    /// databases. `prefix` must be a plain identifier (letters, digits, `_`).
    pub fn create(admin_url: &str, prefix: &str) -> StoreResult<Self> {
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(StoreError::Invalid(format!("database prefix {prefix:?}")));
        }
        let admin: postgres::Config = admin_url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("database url: {e}")))?;
        let name = format!("{prefix}_{:016x}", rand::random::<u64>());
        let sql = format!("CREATE DATABASE {name}");
        blocking(|| Ok(admin_client(&admin)?.batch_execute(&sql)?))?;
        Ok(Self {
            admin,
            #[cfg(test)]
            admin_url: admin_url.to_string(),
            name,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's URL, when the server was given as a URL (`database_url`).
    #[cfg(test)]
    pub fn url(&self) -> Option<String> {
        with_dbname(&self.admin_url, &self.name)
    }

    /// Connection settings for the database.
    pub fn config(&self) -> postgres::Config {
        let mut c = self.admin.clone();
        c.dbname(&self.name);
        c
    }

    /// A store on the database (migrated).
    pub fn store(&self) -> StoreResult<PgStore> {
        PgStore::connect_config(self.config())
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        // The name was built from a checked prefix and hex digits.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let admin = self.admin.clone();
        if let Err(e) = blocking(|| Ok(admin_client(&admin)?.batch_execute(&sql)?)) {
            eprintln!("dropping scratch database {}: {e}", self.name);
        }
    }
}

/// For tests: a fresh, migrated store in its own scratch database on the server named by
/// `RECORDER_TEST_PG_URL` (scripts/pg-test.sh starts one). Without the variable the test is
/// skipped with a message, except under CI (`CI` set), where a skipped backend would pass
/// unseen: there it fails.
#[cfg(test)]
pub fn test_store(test: &str) -> Option<(std::sync::Arc<PgStore>, ScratchDb)> {
    let url = match std::env::var("RECORDER_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{test}: RECORDER_TEST_PG_URL is not set under CI; run the tests through scripts/pg-test.sh");
            }
            eprintln!(
                "{test}: skipped, RECORDER_TEST_PG_URL is not set (scripts/pg-test.sh sets it)"
            );
            return None;
        }
    };
    let db = ScratchDb::create(&url, "test").unwrap_or_else(|e| panic!("{test}: {e}"));
    let store = db.store().unwrap_or_else(|e| panic!("{test}: {e}"));
    Some((std::sync::Arc::new(store), db))
}
