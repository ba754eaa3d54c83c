//! The state of a sweep's output folder: the advisory lock that keeps a second sweep out,
//! and the checks of the rows a resumed sweep finds.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use super::{Run, RunRow, Shard, SweepOptions, out_err};
use crate::error::{Error, Result};

/// Hold an advisory lock on the output folder (per shard) for the life of the returned file:
/// a second sweep into the same folder and shard refuses, naming the holder's pid.
pub(super) fn lock_out(out: &Path, shard: Option<Shard>) -> Result<std::fs::File> {
    let path = out.join(format!(
        ".lock{}",
        shard.map(|s| s.suffix()).unwrap_or_default()
    ));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| out_err(&path, e))?;
    match f.try_lock() {
        Ok(()) => {
            use std::io::Seek;
            f.set_len(0).map_err(|e| out_err(&path, e))?;
            f.rewind().map_err(|e| out_err(&path, e))?;
            writeln!(f, "{}", std::process::id()).map_err(|e| out_err(&path, e))?;
            Ok(f)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            Err(Error::Output {
                path: out.display().to_string(),
                reason: format!(
                    "another sweep (pid {}) is writing here; wait for it, or give another --out or --shard",
                    holder.trim()
                ),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(out_err(&path, e)),
    }
}

/// Rows a resumed sweep finds: a run twice is an error (the file was written by two
/// sweeps at once); rows of runs this spec does not have are kept and named once (an
/// earlier spec, or `reproduce` with fewer models, wrote them).
pub(super) fn check_resume(
    existing: &mut [RunRow],
    runs: &[Run],
    opts: &SweepOptions,
    rows: &Path,
) -> Result<()> {
    let mut seen = HashSet::new();
    if let Some(d) = existing.iter().find(|r| !seen.insert(r.run_id.clone())) {
        return Err(Error::Data {
            path: rows.display().to_string(),
            reason: format!(
                "run {} has two rows (two sweeps wrote this file at once?); keep one of them, or start a new --out",
                d.run_id
            ),
        });
    }
    let ids: HashSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let foreign = existing
        .iter()
        .filter(|r| !ids.contains(r.run_id.as_str()))
        .count();
    if foreign > 0 && !opts.quiet {
        eprintln!(
            "notice: {}: {foreign} rows of runs this spec does not have are kept as they are",
            rows.display()
        );
    }
    Ok(())
}
