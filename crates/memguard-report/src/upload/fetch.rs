//! A bundle brought down from the bucket: `memguard fetch s3://…/<bundle>`
//! and `memguard report s3://…/<bundle>`. Streamed to disk (a snapshot may
//! be GBs), with a progress bar on a terminal; the directory is 0700, its
//! files 0600, nothing existing is overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use memguard_core::bundle::create_private_dir_all;
use memguard_core::dirfd::Dir;
use memguard_core::disk::is_bundle_name;
use memguard_core::upload::{parse_target, Target};
use object_store::{ObjectStore, ObjectStoreExt};

use super::store::{self, Bucket};
use crate::ReportError;

/// `s3://bucket/…/<bundle>` → the bucket and the bundle's key.
pub fn parse_bundle_url(url: &str) -> Result<(Target, String), ReportError> {
    let target = parse_target(url.trim_end_matches('/'))
        .map_err(|p| ReportError::Usage(format!("{}: {p}", memguard_core::printable::name(url))))?
        .ok_or_else(|| ReportError::Usage("no s3:// URL given".into()))?;
    let name = target.prefix.rsplit('/').next().unwrap_or("").to_string();
    if !is_bundle_name(&name) {
        return Err(ReportError::Usage(format!(
            "{} does not end in a bundle's name (<time>-<pid>); `memguard list` shows them",
            memguard_core::printable::name(url)
        )));
    }
    Ok((target, name))
}

/// Downloads the bundle at `url` into `into/<bundle>`, which must not exist;
/// returns that directory.
pub fn fetch(url: &str, into: &Path, progress: bool) -> Result<PathBuf, ReportError> {
    let (target, name) = parse_bundle_url(url)?;
    let bucket = store::open(
        &Target {
            bucket: target.bucket.clone(),
            prefix: String::new(),
        },
        &memguard_core::upload::Sse::Default,
    )?;
    create_private_dir_all(into).map_err(|source| ReportError::Io {
        path: into.into(),
        source,
    })?;
    let parent = Dir::open(into).map_err(|source| ReportError::Io {
        path: into.into(),
        source,
    })?;
    let dest = into.join(&name);
    parent.create_dir(&name).map_err(|source| ReportError::Io {
        path: dest.clone(),
        source,
    })?;
    let dir = parent.open_dir(&name).map_err(|source| ReportError::Io {
        path: dest.clone(),
        source,
    })?;
    let rt = super::runtime()?;
    rt.block_on(download(&bucket, &target.prefix, &dir, &dest, progress))?;
    Ok(dest)
}

async fn download(
    bucket: &Bucket,
    key: &str,
    dir: &Dir,
    dest: &Path,
    progress: bool,
) -> Result<(), ReportError> {
    let err =
        |e: object_store::Error| ReportError::Remote(store::explain(&e, &bucket.target.bucket));
    let prefix = object_store::path::Path::from(key);
    let metas: Vec<_> = bucket
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(err)?;
    // Direct children only: `<bundle>/<file>`.
    let files: Vec<_> = metas
        .into_iter()
        .filter(|m| {
            m.location
                .prefix_match(&prefix)
                .is_some_and(|mut rest| rest.next().is_some() && rest.next().is_none())
        })
        .collect();
    if files.is_empty() {
        return Err(ReportError::Remote(format!(
            "no bundle at s3://{}/{key}",
            bucket.target.bucket
        )));
    }
    let total: u64 = files.iter().map(|m| m.size).sum();
    let bar = progress.then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "downloading {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec} {msg}",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        bar
    });
    for meta in &files {
        let Some(name) = meta.location.filename().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = dest.join(&name);
        let io = |source| ReportError::Io {
            path: path.clone(),
            source,
        };
        let mut file = dir.create_file(&name).map_err(io)?;
        let mut stream = bucket
            .store
            .get(&meta.location)
            .await
            .map_err(err)?
            .into_stream();
        if let Some(bar) = &bar {
            bar.set_message(name.clone());
        }
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(err)?;
            file.write_all(&chunk).map_err(io)?;
            if let Some(bar) = &bar {
                bar.inc(chunk.len() as u64);
            }
        }
        file.sync_data().map_err(io)?;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

/// A private scratch directory under `$TMPDIR`, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Result<Scratch, ReportError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("memguard-report-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|source| ReportError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Scratch(path))
    }
}

use std::os::unix::fs::DirBuilderExt;

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_urls() {
        let (t, name) =
            parse_bundle_url("s3://crashes/fleet/api/host-a/20260102-030405-11/").unwrap();
        assert_eq!(
            (t.bucket.as_str(), t.prefix.as_str(), name.as_str()),
            (
                "crashes",
                "fleet/api/host-a/20260102-030405-11",
                "20260102-030405-11"
            )
        );
        assert!(parse_bundle_url("s3://crashes/fleet").is_err());
        assert!(parse_bundle_url("/local/path").is_err());
    }
}
