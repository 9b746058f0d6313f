//! The schema objects loaded after the data, once per task under its setup lock: views (which
//! may use each other, so they are retried until none is left or no progress is made, with
//! DEFINERs kept, stripped, or kept when the account exists), then the triggers and routines
//! files, statement by statement honouring their `DELIMITER` lines.

use crate::checkpoint;
use crate::config::DefinerPolicy;
use crate::context::Run;
use crate::discover::DumpLayout;
use crate::error::LoadError;
use crate::schema;
use crate::setup;
use ferry_shared::ident::qualified;
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// Views (after all tables), then triggers and routines; once per task.
pub(crate) async fn finish_views_and_post(
    run: &Run,
    layout: &DumpLayout,
    ctl: &mut mysql_async::Conn,
) -> Result<usize, LoadError> {
    let lock = checkpoint::lock_name(&run.task, "setup");
    checkpoint::get_lock(ctl, &lock, Duration::from_secs(3600)).await?;
    let r = async {
        if checkpoint::views_done(ctl, &run.task).await? {
            return Ok(layout.views.len());
        }
        if !run.cfg.no_schema {
            create_views(run, layout, ctl).await?;
            for (db, file) in &layout.post {
                let text = setup::read_schema_text(&run.cfg, &run.storage, file).await?;
                let desc = run.storage.describe(file);
                schema::exec(
                    ctl,
                    format!("USE {}", ferry_shared::ident::quote_ident(db)).as_bytes(),
                    &desc,
                )
                .await?;
                for s in post_statements(&text) {
                    schema::exec(ctl, &s, &desc).await?;
                }
            }
        }
        checkpoint::set_views_done(ctl, &run.task).await?;
        Ok(layout.views.len())
    }
    .await;
    checkpoint::release_lock(ctl, &lock).await?;
    r
}

/// Statements of a triggers/routines file, honouring `DELIMITER` lines.
fn post_statements(text: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(text);
    let mut delim = ";".to_string();
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(d) = line
            .trim()
            .strip_prefix("DELIMITER ")
            .or_else(|| line.trim().strip_prefix("delimiter "))
        {
            delim = d.trim().to_string();
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if line.trim_end().ends_with(&delim) {
            let s = cur.trim_end();
            let s = s[..s.len() - delim.len()].trim();
            if !s.is_empty() {
                out.push(s.as_bytes().to_vec());
            }
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().as_bytes().to_vec());
    }
    out
}

async fn create_views(
    run: &Run,
    layout: &DumpLayout,
    ctl: &mut mysql_async::Conn,
) -> Result<(), LoadError> {
    let mut pending: Vec<(String, Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
    for v in &layout.views {
        let raw = setup::read_schema_text(&run.cfg, &run.storage, &v.file).await?;
        let desc = run.storage.describe(&v.file);
        let strip = match run.cfg.definer {
            DefinerPolicy::Keep => false,
            DefinerPolicy::Strip => true,
            DefinerPolicy::Auto => match schema::definer_of(&raw) {
                None => false,
                Some((user, host)) => {
                    let found: Result<Option<u8>, _> = ctl
                        .exec_first(
                            "SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?",
                            (&user, &host),
                        )
                        .await;
                    match found {
                        Ok(Some(_)) => false,
                        Ok(None) => {
                            tracing::info!(view = %qualified(&v.db, &v.name), definer = %format!("{user}@{host}"), "the view's DEFINER does not exist on the target: the view is created with the loading user as definer");
                            true
                        }
                        Err(_) => false,
                    }
                }
            },
        };
        let Some((stmt, settings)) = schema::view_statement(&raw, &v.db, &v.name, strip) else {
            return Err(LoadError::Input {
                file: desc,
                offset: 0,
                message: "no CREATE VIEW statement in the view file".into(),
            });
        };
        pending.push((desc, stmt, settings));
    }
    // Views may use other views: retry until no progress.
    let mut last_err = None;
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for (desc, stmt, settings) in pending {
            for s in &settings {
                schema::exec(ctl, s, &desc).await?;
            }
            match schema::exec(ctl, &stmt, &desc).await {
                Ok(()) => {}
                Err(e) => {
                    last_err = Some(e);
                    rest.push((desc, stmt, settings));
                }
            }
        }
        if rest.len() == before {
            return Err(last_err.unwrap_or_else(|| LoadError::Internal("view creation".into())));
        }
        pending = rest;
    }
    Ok(())
}
