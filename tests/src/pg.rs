//! Throwaway PostgreSQL databases for tests: each test creates its own
//! `cornetta_test_<random>` database on the server `CORNETTA_TEST_PG_URL` names (default
//! `postgres://postgres@127.0.0.1:5432/test`) and drops it when done, even after a failure.

use anyhow::Context;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The server tests create their databases on (connected to its maintenance database).
pub fn admin_url() -> String {
    std::env::var("CORNETTA_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `url` with its database name replaced by `database` (query parameters kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// A database that exists for as long as this value lives.
#[derive(Debug)]
pub struct TestDatabase {
    /// Connect here (`postgres://…/cornetta_test_<random>`).
    pub url: String,
    pub name: String,
    admin: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database.
    pub async fn create() -> anyhow::Result<Self> {
        let admin = admin_url();
        let name = format!("cornetta_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {admin} (set CORNETTA_TEST_PG_URL to another server)"))?;
        // The name is ours (hex only): no quoting issue.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.context("creating the test database")?;
        conn.close().await.ok();
        Ok(Self { url: with_database(&admin, &name), name, admin })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside a runtime (the test's), so the drop gets its own thread and
        // runtime. FORCE ends the connections the store under test may still hold.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut conn).await?;
                conn.close().await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}: {done:?}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_replaces_only_the_database_name() {
        let cases = [
            ("postgres://postgres@127.0.0.1:5432/test", "postgres://postgres@127.0.0.1:5432/x"),
            ("postgres://u:p@h/test?sslmode=disable", "postgres://u:p@h/x?sslmode=disable"),
            ("postgresql://h:5432", "postgresql://h:5432/x"),
        ];
        for (input, expected) in cases {
            assert_eq!(with_database(input, "x"), expected, "{input}");
        }
    }
}
