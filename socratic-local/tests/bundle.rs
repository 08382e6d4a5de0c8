//! Bundles: a finished benchmark exported as one file, imported into another directory and
//! replayed there byte for byte with no model call; and every kind of bad bundle refused
//! with nothing written.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use socratic_core::canonical::ContentHash;
use socratic_core::id::ModelId;
use socratic_local::bundle::{self, BundleError};
use socratic_local::history::History;
use socratic_local::{Error, Overrides, Rejudge};
use support::{options, run};

mod support;

const REPORT_FILES: [&str; 3] = ["summary.json", "leaderboard.csv", "report.html"];

/// The default benchmark run in `dir/results` and exported to `dir/bundle.tar.gz`.
async fn exported(dir: &Path) -> (PathBuf, PathBuf) {
    let out = dir.join("results");
    run(options(&out)).await;
    let file = dir.join("bundle.tar.gz");
    let exported = bundle::export(&out, None, None, &file).await.unwrap();
    assert_eq!(exported.runs, 24);
    assert!(exported.answers > 0);
    (out, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_imported_elsewhere_replays_byte_for_byte_with_no_model_call() {
    let origin = tempfile::tempdir().unwrap();
    let (original, file) = exported(origin.path()).await;

    // Another machine: nothing of the original directory but the bundle.
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = elsewhere.path().join("shared.tar.gz");
    std::fs::copy(&file, &moved).unwrap();
    let imported_dir = elsewhere.path().join("imported");
    let imported = bundle::import(&moved, &imported_dir).await.unwrap();
    assert_eq!(imported.runs, 24);
    assert!(imported.new_files > 0);
    let again = bundle::import(&moved, &imported_dir).await.unwrap();
    assert_eq!(again.new_files, 0, "importing twice changes nothing");
    let lines = History::open(&imported_dir)
        .unwrap()
        .manifests()
        .await
        .unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].manifest.id, imported.manifest);
    assert_eq!(lines[0].status(), "finished");

    // From the bundle, and from the imported directory.
    for (source, replay_dir) in [
        (moved.clone(), elsewhere.path().join("replayed-bundle")),
        (imported_dir.clone(), elsewhere.path().join("replayed-dir")),
    ] {
        let replayed = bundle::replay(&source, None, None, &replay_dir, 4)
            .await
            .unwrap();
        assert_eq!(replayed.calls, 0, "{}", source.display());
        assert!(replayed.identical(), "{:?}", replayed.compared);
        for name in REPORT_FILES {
            assert!(
                std::fs::read(original.join(name)).unwrap()
                    == std::fs::read(replay_dir.join(name)).unwrap(),
                "{name} replayed from {} differs from the original",
                source.display()
            );
        }
        let runs = run_files(&original).await;
        assert_eq!(runs.len(), 24);
        assert_eq!(runs, run_files(&replay_dir).await, "same run ids");
    }

    // Re-judging the imported benchmark pays for the new judge's calls only: at most one
    // per judged turn, where the dialogues cost three calls a turn.
    let rejudged = run(socratic_local::BenchmarkOptions {
        overrides: Overrides {
            judges: vec![ModelId::new("sim-judge-strict").unwrap()],
            ..Overrides::default()
        },
        rejudge: Some(Rejudge::default()),
        ..options(&imported_dir)
    })
    .await;
    assert_eq!(rejudged.summary.rejudge_of, Some(imported.manifest));
    assert!(
        rejudged.called_now > 0 && rejudged.called_now <= 24 * 3,
        "{}",
        rejudged.called_now
    );
}

async fn run_files(out: &Path) -> Vec<String> {
    use socratic_core::blob::BlobStoreExt;
    socratic_sqlite::ResultsBlobs::read(out)
        .unwrap()
        .list_all("curated/runs/")
        .await
        .unwrap()
        .into_iter()
        .map(|meta| meta.key.as_str().to_owned())
        .collect()
}

/// One entry of an archive: its path, its bytes, and whether it is a symbolic link.
type Entry = (String, Vec<u8>, bool);

/// The entries of a bundle, in order.
fn entries(file: &Path) -> Vec<Entry> {
    let mut archive = tar::Archive::new(GzDecoder::new(std::fs::File::open(file).unwrap()));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (path, bytes, false)
        })
        .collect()
}

/// Writes `entries` as a gzip-compressed tar.
fn write(file: &Path, entries: &[Entry]) {
    let out = std::fs::File::create(file).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        out,
        flate2::Compression::fast(),
    ));
    for (path, bytes, link) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        if *link {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            tar.append_link(&mut header, path, "/etc/passwd").unwrap();
        } else {
            header.set_size(bytes.len() as u64);
            // Written raw, so that a path the tar crate itself would refuse gets through.
            let name = header.as_old_mut();
            name.name = [0; 100];
            name.name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            tar.append(&header, bytes.as_slice()).unwrap();
        }
    }
    tar.into_inner().unwrap().finish().unwrap();
}

/// Rewrites the index so that it lists `entries` (other than itself) as they are.
fn reindex(entries: &mut [Entry]) {
    let mut index: serde_json::Value = serde_json::from_slice(&entries[0].1).unwrap();
    let members = serde_json::Map::from_iter(entries[1..].iter().map(|(path, bytes, _)| {
        (
            path.clone(),
            serde_json::json!({
                "bytes": bytes.len(),
                "sha256": ContentHash::of_bytes(bytes).as_str(),
            }),
        )
    }));
    index["members"] = serde_json::Value::Object(members);
    entries[0].1 = serde_json::to_vec_pretty(&index).unwrap();
}

/// What a bad bundle's error must be.
type Expected = fn(&BundleError) -> bool;

fn bundle_error(result: Result<bundle::Imported, Error>) -> BundleError {
    match result {
        Err(Error::Bundle(e)) => e,
        other => panic!("expected a bundle error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_bundle_is_refused_with_a_typed_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = exported(dir.path()).await;
    let original = entries(&file);
    assert_eq!(original[0].0, "bundle.json");
    let member = |name: &str| original.iter().position(|e| e.0.ends_with(name)).unwrap();

    let variant = |name: &str, change: &dyn Fn(&mut Vec<Entry>)| -> PathBuf {
        let mut changed = original.clone();
        change(&mut changed);
        let path = dir.path().join(format!("{name}.tar.gz"));
        write(&path, &changed);
        path
    };
    let mut cases: Vec<(PathBuf, Expected)> = Vec::new();
    cases.push((
        variant("version", &|e| {
            let mut index: serde_json::Value = serde_json::from_slice(&e[0].1).unwrap();
            index["version"] = 99.into();
            e[0].1 = serde_json::to_vec(&index).unwrap();
        }),
        |e| {
            matches!(
                e,
                BundleError::UnknownVersion {
                    found: 99,
                    supported: 1
                }
            )
        },
    ));
    cases.push((
        variant("missing", &|e| {
            e.remove(member("report.html"));
        }),
        |e| matches!(e, BundleError::MissingMember(m) if m.ends_with("report.html")),
    ));
    cases.push((
        variant("changed", &|e| {
            let summary = &mut e[member("summary.json")].1;
            let at = summary.len() / 2;
            summary[at] ^= 1;
        }),
        |e| matches!(e, BundleError::Changed { member } if member.ends_with("summary.json")),
    ));
    cases.push((
        variant("unlisted", &|e| {
            e.push(("curated/runs/extra.json".into(), b"{}".to_vec(), false));
        }),
        |e| matches!(e, BundleError::UnlistedMember(m) if m == "curated/runs/extra.json"),
    ));
    for (name, path) in [
        ("parent", "../escaped.json"),
        ("absolute", "/tmp/escaped.json"),
        ("nested-parent", "curated/runs/../../../escaped.json"),
    ] {
        let path = path.to_owned();
        cases.push((
            variant(name, &move |e| {
                e.push((path.clone(), b"{}".to_vec(), false));
                reindex(e);
            }),
            |e| matches!(e, BundleError::UnsafePath { .. }),
        ));
    }
    cases.push((
        variant("link", &|e| {
            e.push(("curated/runs/link.json".into(), Vec::new(), true));
            reindex(e);
        }),
        |e| matches!(e, BundleError::UnsafePath { path, .. } if path == "curated/runs/link.json"),
    ));
    let bytes = std::fs::read(&file).unwrap();
    let truncated = dir.path().join("truncated.tar.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    cases.push((truncated, |e| matches!(e, BundleError::Unreadable { .. })));
    let not_gzip = dir.path().join("not.tar.gz");
    std::fs::write(&not_gzip, b"plain text").unwrap();
    cases.push((not_gzip, |e| matches!(e, BundleError::Unreadable { .. })));

    for (path, expected) in cases {
        let target = dir.path().join("never-written");
        let error = bundle_error(bundle::import(&path, &target).await);
        assert!(expected(&error), "{}: {error:?}", path.display());
        assert!(!error.to_string().is_empty());
        assert!(
            !target.exists(),
            "{}: wrote into the target",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_whose_catalog_contradicts_the_target_is_refused_and_the_target_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = exported(dir.path()).await;
    let target = dir.path().join("target");
    bundle::import(&file, &target).await.unwrap();

    // The same benchmark with another rubric under the same id, hashed consistently: a
    // valid bundle, but not the rubric the target holds.
    let mut changed = entries(&file);
    let rubric = changed
        .iter()
        .position(|e| e.0.starts_with("catalog/rubrics/"))
        .unwrap();
    let mut value: serde_json::Value = serde_json::from_slice(&changed[rubric].1).unwrap();
    value["description"] = "Another rubric under the same id.".into();
    changed[rubric].1 = serde_json::to_vec_pretty(&value).unwrap();
    let rubric_id = value["id"].as_str().unwrap().to_owned();
    let hash = socratic_core::canonical::content_hash(
        &serde_json::from_value::<socratic_core::entity::Rubric>(value).unwrap(),
    )
    .unwrap();
    let manifest = changed
        .iter()
        .position(|e| e.0.starts_with("manifests/"))
        .unwrap();
    let mut stored: serde_json::Value = serde_json::from_slice(&changed[manifest].1).unwrap();
    stored["catalog_hashes"][format!("RUBRIC#{rubric_id}")] = hash.as_str().into();
    changed[manifest].1 = serde_json::to_vec_pretty(&stored).unwrap();
    reindex(&mut changed);
    let conflicting = dir.path().join("conflicting.tar.gz");
    write(&conflicting, &changed);

    let before = snapshot(&target);
    let error = bundle_error(bundle::import(&conflicting, &target).await);
    match &error {
        BundleError::Conflict { message, .. } => {
            assert!(message.contains(&rubric_id), "{message}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(snapshot(&target), before, "the target changed");
}

/// Every file of a directory but the database's, with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(next).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                pending.push(path);
            } else if !name.starts_with("socratic.") {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}
