//! The archive itself: a gzip-compressed tar with the index first, written reproducibly
//! (fixed times, owners and modes, members in path order) and read with every check.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::Deserialize;
use socratic_core::canonical::ContentHash;

use super::{Bundle, BundleError, FORMAT, INDEX, Index, VERSION, check_path};
use crate::error::Error;

/// Writes `bundle` to `file`: to a temporary file beside it, renamed into place once whole,
/// so a failed or interrupted export leaves no partial bundle.
pub(super) fn write(bundle: &Bundle, file: &Path) -> Result<u64, Error> {
    let index = serde_json::to_vec_pretty(&bundle.index).map_err(|e| Error::Failed {
        context: "writing the bundle's index".to_owned(),
        source: e.into(),
    })?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = file.with_file_name(format!(".{name}.partial"));
    let written = (|| -> std::io::Result<u64> {
        let out = std::fs::File::create(&partial)?;
        let mut tar = tar::Builder::new(GzEncoder::new(out, Compression::default()));
        append(&mut tar, INDEX, &index)?;
        for (path, bytes) in &bundle.members {
            append(&mut tar, path, bytes)?;
        }
        let out = tar.into_inner()?.finish()?;
        out.sync_all()?;
        Ok(out.metadata()?.len())
    })();
    let size = match written {
        Ok(size) => size,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(Error::io(&partial)(e));
        }
    };
    std::fs::rename(&partial, file).map_err(Error::io(file))?;
    Ok(size)
}

fn append<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, bytes)
}

/// The first fields of an index, read before the rest so that a bundle of another version is
/// named as such rather than as malformed.
#[derive(Deserialize)]
struct Version {
    format: String,
    version: u32,
}

/// Reads a bundle, checking its format and version, that every member is a plain file at a
/// safe path, listed in the index, and matches the index's size and sha256, and that no listed
/// member is missing.
pub fn read(file: &Path) -> Result<Bundle, BundleError> {
    let unreadable = |message: String| BundleError::Unreadable {
        path: file.to_owned(),
        message,
    };
    let not_bundle = |message: String| BundleError::NotABundle {
        path: file.to_owned(),
        message,
    };
    let opened = std::fs::File::open(file).map_err(|e| unreadable(e.to_string()))?;
    let mut archive = tar::Archive::new(GzDecoder::new(std::io::BufReader::new(opened)));
    let mut index: Option<Index> = None;
    let mut members = BTreeMap::new();
    for entry in archive.entries().map_err(|e| unreadable(e.to_string()))? {
        let mut entry = entry.map_err(|e| unreadable(e.to_string()))?;
        let path = String::from_utf8(entry.path_bytes().into_owned()).map_err(|_| {
            BundleError::UnsafePath {
                path: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
                reason: "the path is not UTF-8",
            }
        })?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(BundleError::UnsafePath {
                path,
                reason: "only plain files are allowed (no links, folders or devices)",
            });
        }
        let Some(index) = &index else {
            if path != INDEX {
                return Err(not_bundle(format!(
                    "its first member is {path}, not {INDEX}"
                )));
            }
            let bytes = read_at_most(&mut entry, 16 << 20).map_err(unreadable)?;
            index = Some(parse_index(&bytes).map_err(|e| match e {
                Parsed::Not(message) => not_bundle(message),
                Parsed::Err(e) => e,
            })?);
            continue;
        };
        check_path(&path)?;
        let Some(listed) = index.members.get(&path) else {
            return Err(BundleError::UnlistedMember(path));
        };
        let bytes = read_at_most(&mut entry, listed.bytes).map_err(unreadable)?;
        if bytes.len() as u64 != listed.bytes || ContentHash::of_bytes(&bytes) != listed.sha256 {
            return Err(BundleError::Changed { member: path });
        }
        if members.insert(path.clone(), bytes).is_some() {
            return Err(BundleError::UnlistedMember(format!("{path} (twice)")));
        }
    }
    // The gzip trailer's checksum is checked only when the stream is read to its end.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
        .map_err(|e| unreadable(e.to_string()))?;
    let index = index.ok_or_else(|| not_bundle("the archive is empty".to_owned()))?;
    if let Some(missing) = index.members.keys().find(|p| !members.contains_key(*p)) {
        return Err(BundleError::MissingMember(missing.clone()));
    }
    Ok(Bundle { index, members })
}

enum Parsed {
    Not(String),
    Err(BundleError),
}

fn parse_index(bytes: &[u8]) -> Result<Index, Parsed> {
    let version: Version = serde_json::from_slice(bytes)
        .map_err(|e| Parsed::Not(format!("{INDEX} is not an index: {e}")))?;
    if version.format != FORMAT {
        return Err(Parsed::Not(format!(
            "{INDEX} says format {:?}, not {FORMAT:?}",
            version.format
        )));
    }
    if version.version != VERSION {
        return Err(Parsed::Err(BundleError::UnknownVersion {
            found: version.version,
            supported: VERSION,
        }));
    }
    let index: Index = serde_json::from_slice(bytes).map_err(|e| {
        Parsed::Err(BundleError::Malformed {
            member: INDEX.to_owned(),
            message: e.to_string(),
        })
    })?;
    for path in index.members.keys() {
        check_path(path).map_err(Parsed::Err)?;
    }
    Ok(index)
}

/// Reads an entry, but never more than one byte past `limit`: a member larger than its index
/// says is refused without reading it whole.
fn read_at_most(entry: &mut impl Read, limit: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    entry
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}
