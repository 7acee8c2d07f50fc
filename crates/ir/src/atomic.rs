//! Writing files so that nothing is lost: a file is written to a temporary beside it, synced
//! and renamed over the target, so a reader sees the old file or the new one, never half of
//! one. Deploy models, checkpoints, configurations, tables and predictions all go through
//! `write_atomic`.

use std::io::Write;
use std::path::{Path, PathBuf};

/// What marks `write_atomic`'s temporary files (".NAME.tmp.PID").
const TMP_MARK: &str = ".tmp.";

/// Writes `data` to `path` atomically (creating its directory). On failure the temporary is
/// removed (a half-written one must not keep a full disk full) and the error names the file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), (PathBuf, std::io::Error)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| (dir.to_path_buf(), e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}{TMP_MARK}{}", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(data).and_then(|()| f.sync_all()))
        .map_err(|e| (tmp.clone(), e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| (path.to_path_buf(), e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes temporary files that interrupted writes left in `dir` (".NAME.tmp.PID"): a killed
/// process leaves them; whoever takes the directory (under its lock) clears them. Returns the
/// names removed.
pub fn remove_stale_temporaries(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with('.')
            && name
                .rsplit_once(TMP_MARK)
                .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if ours && e.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(e.path()).is_ok() {
            removed.push(name);
        }
    }
    removed
}
