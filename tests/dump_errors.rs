//! Acceptance: definite, clear errors (exit code 1, or 2 for usage) — and secrets never shown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;

fn dump_cmd(source: &str, to: &str, args: &[&str]) -> std::process::Output {
    dump_command(source, to).args(args).output().unwrap()
}

fn port_url(user: &str) -> String {
    format!("mysql://{user}@127.0.0.1:{}", servers().source_port)
}

async fn make_user(name: &str, password: &str, grants: &str) {
    let mut src = source().await;
    exec(
        &mut src,
        &format!("CREATE OR REPLACE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{password}'"),
    )
    .await;
    exec(
        &mut src,
        &format!("GRANT {grants} ON *.* TO '{name}'@'127.0.0.1'"),
    )
    .await;
}

#[tokio::test]
async fn credentials_are_checked_and_never_shown() {
    let user = unique_db("u");
    let secret = "s3cr3t-Pw-never-shown";
    make_user(&user, secret, "ALL PRIVILEGES").await;
    let db = unique_db("cred");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("out");

    // Wrong password: exit 1, the reason, and no secret.
    let out = dump_command(&port_url(&user), &to)
        .env("FERRY_SOURCE_PASSWORD", "wrong-password")
        .args(["-B", &db])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("1045") && err.contains("password"), "{err}");
    assert!(!err.contains("wrong-password"));

    // A password in the URL is refused without echoing it.
    let out = dump_cmd(
        &format!(
            "mysql://{user}:{secret}@127.0.0.1:{}",
            servers().source_port
        ),
        to.to_str().unwrap(),
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains(secret), "{err}");

    // The right password from a file works; it appears nowhere in the output.
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, format!("{secret}\n")).unwrap();
    let out = dump_command(&port_url(&user), &to)
        .args(["-B", &db, "--source-password-file"])
        .arg(&pwfile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("reader=\"bulk\""),
        "a password login uses the bulk reader"
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(secret));
    let manifest = std::fs::read_to_string(to.join("ferry-manifest.json")).unwrap();
    assert!(!manifest.contains(secret));
}

#[tokio::test]
async fn missing_privilege_falls_back_and_explicit_strategy_fails_clearly() {
    let user = unique_db("lowpriv");
    make_user(
        &user,
        "pw-lowpriv",
        "SELECT, LOCK TABLES, SHOW VIEW, BINLOG MONITOR",
    )
    .await;
    let db = unique_db("priv");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"),
    )
    .await;
    exec(&mut src, &format!("INSERT INTO `{db}`.t VALUES (1),(2)")).await;
    let dir = tempfile::tempdir().unwrap();

    let out = dump_command(&port_url(&user), dir.path().join("auto"))
        .env("FERRY_SOURCE_PASSWORD", "pw-lowpriv")
        .args(["-B", &db])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("fell back to `lock`"),
        "the fallback is logged: {err}"
    );
    let m = manifest(&dir.path().join("auto"));
    assert_eq!(m["consistency"], "lock");
    assert_eq!(m["totals"]["rows"], 2);

    let out = dump_command(&port_url(&user), dir.path().join("flush"))
        .env("FERRY_SOURCE_PASSWORD", "pw-lowpriv")
        .args(["-B", &db, "--consistency", "flush"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("FLUSH TABLES WITH READ LOCK") && err.contains("RELOAD"),
        "{err}"
    );
    assert!(!dir.path().join("flush/ferry-manifest.json").exists());
}

#[tokio::test]
async fn bad_destinations_and_filters() {
    let src = &servers().source_url;
    // No table matches.
    let dir = tempfile::tempdir().unwrap();
    let out = dump_cmd(
        src,
        dir.path().join("x").to_str().unwrap(),
        &["-B", "no_such_database_anywhere"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no table matches"));
    // Bad filter rule: usage error naming the rule.
    let out = dump_cmd(
        src,
        dir.path().join("y").to_str().unwrap(),
        &["-f", "db.[a"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("db.[a"));
    // Not writable.
    let out = dump_cmd(src, "/proc/ferry-cannot-write-here", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not writable") && err.contains("/proc/ferry-cannot-write-here"),
        "{err}"
    );
    // Missing bucket.
    if let Ok(endpoint) = std::env::var("FERRY_TEST_S3_ENDPOINT") {
        let out = dump_cmd(
            src,
            "s3://no-such-bucket-ferry/x",
            &["--s3-endpoint", &endpoint],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("NoSuchBucket") && err.contains("no-such-bucket-ferry"),
            "{err}"
        );
    }
    // Unreachable server: transient (3) and says so.
    let out = dump_cmd(
        "mysql://root@127.0.0.1:1",
        dir.path().join("z").to_str().unwrap(),
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("cannot reach"), "{err}");
}

#[tokio::test]
async fn tls_is_verified_against_the_given_ca() {
    let ca = servers()
        .ssl_ca
        .clone()
        .expect("the sandbox servers have TLS (scripts/servers.sh needs openssl)");
    let user = unique_db("tls");
    make_user(&user, "pw-tls", "ALL PRIVILEGES").await;
    let mut src = source().await;
    exec(
        &mut src,
        &format!("ALTER USER '{user}'@'127.0.0.1' REQUIRE SSL"),
    )
    .await;
    let db = unique_db("tlsdb");
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, s VARCHAR(10))"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t VALUES (1, 'a'), (2, NULL)"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();

    // Over TLS: works, through the driver, and writes what a plain connection writes.
    let out = dump_command(&port_url(&user), dir.path().join("tls"))
        .env("FERRY_SOURCE_PASSWORD", "pw-tls")
        .args(["-B", &db, "--source-ssl-ca"])
        .arg(&ca)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("reader=\"driver\""), "{err}");
    dump(&dir.path().join("plain"), &["-B", &db]);
    let name = format!("{db}.t.000000000.sql");
    assert_eq!(
        std::fs::read(dir.path().join("tls").join(&name)).unwrap(),
        std::fs::read(dir.path().join("plain").join(&name)).unwrap()
    );

    // Without TLS the account is refused.
    let out = dump_command(&port_url(&user), dir.path().join("none"))
        .env("FERRY_SOURCE_PASSWORD", "pw-tls")
        .args(["-B", &db])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1045"));

    // A CA that did not sign the server's certificate is refused.
    let other = unrelated_ca(dir.path());
    let out = dump_command(&port_url(&user), dir.path().join("wrong"))
        .env("FERRY_SOURCE_PASSWORD", "pw-tls")
        .args(["-B", &db, "--source-ssl-ca"])
        .arg(&other)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a definite error: {err}");
    assert!(
        err.contains("TLS handshake failed") && err.contains("--*-ssl-ca"),
        "{err}"
    );
    assert!(!dir.path().join("wrong/ferry-manifest.json").exists());
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct TmpfsMount(std::path::PathBuf);

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn disk_full_is_a_definite_error_naming_the_file() {
    let db = unique_db("full");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, pad CHAR(200))"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t SELECT seq, REPEAT('x', 200) FROM `{db}`.seq_1_to_40000"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    // A 2 MiB file system for an ~8 MB dump (the suite runs as root, as its installs do).
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2M", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a small tmpfs needs root");
    let _guard = TmpfsMount(mnt.clone());
    let out = dump_command(&servers().source_url, &mnt)
        .args(["-B", &db, "--rows", "10000"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("No space left on device") && err.contains(&*mnt.to_string_lossy()),
        "{err}"
    );
    assert!(
        !mnt.join("ferry-manifest.json").exists(),
        "nothing reported complete"
    );
}
