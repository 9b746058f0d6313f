//! Connections to MySQL-protocol servers: URL parsing, secrets, TLS, flavour detection.
//!
//! Passwords never travel through process arguments: a URL that carries one is refused, and the
//! password comes from an environment variable or a file. Error messages name the server by its
//! URL without credentials.

use crate::failure::{Class, Classify, Failure};
use crate::location::Flavor;
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, SslOpts};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("invalid server URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot read password file {path}: {source}")]
    PasswordFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Connect(Failure),
}

impl Classify for ConnError {
    fn class(&self) -> Class {
        match self {
            ConnError::Connect(f) => f.class,
            ConnError::BadUrl { .. } | ConnError::PasswordFile { .. } => Class::Definite,
        }
    }
}

/// Where and how to connect; built from `--source`/`--target` and their options.
#[derive(Clone)]
pub struct ConnSpec {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: Option<String>,
    pub socket: Option<String>,
    pub ssl_ca: Option<PathBuf>,
    /// Accept any server certificate (only with an explicit flag).
    pub ssl_insecure: bool,
}

impl std::fmt::Debug for ConnSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnSpec")
            .field("server", &self.display())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ConnSpec {
    /// Parses `mysql://user@host:port[/db][?socket=/path]`. A password in the URL is an error.
    pub fn parse(url: &str) -> Result<Self, ConnError> {
        let bad = |reason: &str| ConnError::BadUrl {
            url: redact_url(url),
            reason: reason.to_string(),
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "mysql" {
            return Err(bad("the scheme must be mysql://"));
        }
        if parsed.password().is_some() {
            return Err(bad(
                "passwords are not accepted in URLs (they would show in the process list); \
                 use FERRY_SOURCE_PASSWORD / FERRY_TARGET_PASSWORD or --source-password-file / --target-password-file",
            ));
        }
        let user = percent_encoding::percent_decode_str(parsed.username())
            .decode_utf8()
            .map_err(|_| bad("user name is not UTF-8"))?
            .to_string();
        let host = parsed
            .host_str()
            .unwrap_or("127.0.0.1")
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let database = parsed
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|d| !d.is_empty())
            .map(str::to_string);
        let mut socket = None;
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "socket" => socket = Some(v.to_string()),
                other => {
                    return Err(bad(&format!(
                        "unknown URL parameter `{other}` (known: socket)"
                    )))
                }
            }
        }
        Ok(Self {
            host,
            port: parsed.port().unwrap_or(3306),
            user: if user.is_empty() { "root".into() } else { user },
            password: None,
            database,
            socket,
            ssl_ca: None,
            ssl_insecure: false,
        })
    }

    /// Takes the password from `env_var`, else from `file` (first line, trailing newline cut).
    pub fn with_password_from(
        mut self,
        env_var: &str,
        file: Option<&std::path::Path>,
    ) -> Result<Self, ConnError> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConnError::PasswordFile {
                path: path.display().to_string(),
                source,
            })?;
            self.password = Some(text.lines().next().unwrap_or("").to_string());
        } else if let Ok(pw) = std::env::var(env_var) {
            self.password = Some(pw);
        }
        Ok(self)
    }

    /// `user@host:port` — safe for logs and errors.
    pub fn display(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }

    pub fn opts(&self) -> Result<Opts, ConnError> {
        let mut b = OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(self.password.clone())
            .db_name(self.database.clone())
            .prefer_socket(false)
            .socket(self.socket.clone())
            // Statements are cached and reused; with a zero cache, mysql_async never closes
            // the statements `exec_*` prepares, and a long run exhausts the server's
            // max_prepared_stmt_count.
            .stmt_cache_size(64)
            .wait_timeout(Some(28_800));
        if self.ssl_ca.is_some() || self.ssl_insecure {
            let mut ssl = SslOpts::default();
            if let Some(ca) = &self.ssl_ca {
                if !ca.exists() {
                    return Err(ConnError::Connect(
                        Failure::definite(
                            format!("connecting to {}", self.display()),
                            format!("the TLS CA file {} does not exist", ca.display()),
                        )
                        .with_fix("give the path of the CA certificate (PEM) with --*-ssl-ca"),
                    ));
                }
                ssl = ssl.with_root_certs(vec![ca.clone().into()]);
            }
            if self.ssl_insecure {
                ssl = ssl
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true);
            }
            b = b.ssl_opts(Some(ssl));
        }
        Ok(b.into())
    }

    /// Opens one connection, turning driver errors into messages that say what to do.
    pub async fn connect(&self) -> Result<mysql_async::Conn, ConnError> {
        let opts = self.opts()?;
        mysql_async::Conn::new(opts)
            .await
            .map_err(|e| self.describe_error(e))
    }

    /// A driver error met while connecting, classified and naming this server.
    pub fn describe_error(&self, e: mysql_async::Error) -> ConnError {
        ConnError::Connect(Failure::mysql(
            format!("connecting to {}", self.display()),
            &e,
        ))
    }
}

fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("REDACTED"));
            }
            u.to_string()
        }
        Err(_) => "<unparseable>".to_string(),
    }
}

/// What the server is: flavour and version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerInfo {
    pub flavor: Flavor,
    /// `SELECT VERSION()` as the server prints it.
    pub version: String,
    /// (major, minor, patch) parsed from the version.
    pub numeric: (u32, u32, u32),
}

impl ServerInfo {
    pub fn from_version(version: &str) -> Self {
        let lower = version.to_ascii_lowercase();
        let flavor = if lower.contains("tidb") {
            Flavor::Tidb
        } else if lower.contains("mariadb") {
            Flavor::Mariadb
        } else {
            Flavor::Mysql
        };
        // MariaDB 10.x sometimes reports "5.5.5-10.11.6-MariaDB".
        let v = version.strip_prefix("5.5.5-").unwrap_or(version);
        let mut nums = v
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().unwrap_or(0));
        let numeric = (
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
        );
        Self {
            flavor,
            version: version.to_string(),
            numeric,
        }
    }

    pub async fn query(conn: &mut mysql_async::Conn) -> Result<Self, mysql_async::Error> {
        let v: Option<String> = conn.query_first("SELECT VERSION()").await?;
        Ok(Self::from_version(&v.unwrap_or_default()))
    }

    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.numeric.0, self.numeric.1) >= (major, minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let s = ConnSpec::parse("mysql://app@db.example:3307/shop").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.user.as_str()),
            ("db.example", 3307, "app")
        );
        assert_eq!(s.database.as_deref(), Some("shop"));
        let err = ConnSpec::parse("mysql://app:hunter2@h")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("FERRY_SOURCE_PASSWORD"));
        assert!(ConnSpec::parse("postgres://h").is_err());
        let d = ConnSpec::parse("mysql://127.0.0.1").unwrap();
        assert_eq!((d.user.as_str(), d.port), ("root", 3306));
        let mut p = d.clone();
        p.password = Some("secret".into());
        assert!(!format!("{p:?}").contains("secret"));
    }

    #[test]
    fn versions() {
        let m = ServerInfo::from_version("10.11.19-MariaDB-0+deb12u1");
        assert_eq!((m.flavor, m.numeric), (Flavor::Mariadb, (10, 11, 19)));
        let o = ServerInfo::from_version("5.5.5-10.6.12-MariaDB-log");
        assert_eq!(o.numeric, (10, 6, 12));
        let my = ServerInfo::from_version("8.0.36");
        assert_eq!(my.flavor, Flavor::Mysql);
        assert!(my.at_least(8, 0));
        let t = ServerInfo::from_version("8.0.11-TiDB-v7.5.0");
        assert_eq!(t.flavor, Flavor::Tidb);
    }
}
