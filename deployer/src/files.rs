//! Files written whole: a reader, a second process or an interrupted run never sees one cut short.

use std::path::Path;

/// Writes `bytes` aside in `path`'s directory and renames them over `path`. An error (or a
/// Ctrl-C before the rename) leaves `path` as it was; the file aside is removed on an error, and
/// the name it has (`.deployer-` and random letters) is its own, so that two processes writing
/// one path at once do not write into each other's. Made as `std::fs::write` would make it (0666
/// less the umask), not private as a temporary file is.
pub fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut aside = tempfile::Builder::new()
        .prefix(".deployer-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    aside.write_all(bytes)?;
    aside.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_nothing_is_left_beside_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_whole(&path, b"first").unwrap();
        write_whole(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
        // As std::fs::write makes it: readable by others unless the umask says otherwise.
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let as_std_writes = {
            let probe = dir.path().join("probe");
            std::fs::write(&probe, b"").unwrap();
            std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode, as_std_writes);
        // A directory that is not there: an error, and no file.
        let missing = dir.path().join("missing/state.json");
        assert!(write_whole(&missing, b"x").is_err());
        assert!(!missing.exists());
    }
}
