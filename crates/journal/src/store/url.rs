//! Where a store is, as `--store` names it: `sqlite:PATH` (or just a path) for the embedded
//! journal, `postgres://…` for a PostgreSQL server shared by many hosts.

use std::fmt;
use std::path::PathBuf;

/// A store's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A SQLite journal file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://user[:password]@host[:port]/database`).
    Postgres(String),
}

impl StoreUrl {
    /// Parses `sqlite:PATH`, `postgres://…`/`postgresql://…`, or a bare path (a SQLite file).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Self::Postgres(text.into()));
        }
        let path = text.strip_prefix("sqlite:").unwrap_or(text);
        if path.is_empty() {
            return Err(format!(
                "'{text}' names no store; use sqlite:PATH or postgres://USER@HOST:PORT/DATABASE"
            ));
        }
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(format!(
                "'{scheme}://' is not a store Baton knows; use sqlite:PATH or \
                 postgres://USER@HOST:PORT/DATABASE"
            ));
        }
        Ok(Self::Sqlite(path.into()))
    }

    /// The SQLite file, when it is one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Self::Sqlite(path) => Some(path),
            Self::Postgres(_) => None,
        }
    }
}

impl fmt::Display for StoreUrl {
    /// The address with any password hidden, as messages show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&without_password(url)),
        }
    }
}

/// `url` with the password of its user part replaced by `***`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let Some((user, host)) = rest.split_once('@') else {
        return url.into();
    };
    match user.split_once(':') {
        Some((name, _)) => format!("{scheme}://{name}:***@{host}"),
        None => url.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_parse_by_scheme() {
        assert_eq!(
            StoreUrl::parse("sqlite:/tmp/j.db").unwrap(),
            StoreUrl::Sqlite("/tmp/j.db".into())
        );
        assert_eq!(
            StoreUrl::parse("j.db").unwrap(),
            StoreUrl::Sqlite("j.db".into())
        );
        let pg = StoreUrl::parse("postgres://baton:s3cret@127.0.0.1:5432/baton").unwrap();
        assert_eq!(pg.to_string(), "postgres://baton:***@127.0.0.1:5432/baton");
        assert!(pg.file().is_none());
        let err = StoreUrl::parse("mysql://x").unwrap_err();
        assert!(err.contains("'mysql://' is not a store"), "{err}");
        assert!(StoreUrl::parse("sqlite:").is_err());
    }
}
