//! `--cache PATH`: a results directory, its cache folder or a bundle all answer; a path with
//! no cache is refused before anything is written; a cache that answers nothing is told.

#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use socratic_local::given_cache::{CacheHits, GivenCache};
use socratic_local::{Benchmark, CacheChoice, Error, Progress, bundle};
use support::{finished, options, run};

mod support;

/// The cold-cache reports a benchmark made.
#[derive(Default)]
struct Told(Mutex<Vec<CacheHits>>);

impl Progress for Told {
    fn cache_cold(&self, _given: &GivenCache, hits: CacheHits) {
        self.0.lock().unwrap().push(hits);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_results_directory_its_cache_folder_and_a_bundle_each_answer_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    run(options(&original)).await;
    let file = dir.path().join("bundle.tar.gz");
    bundle::export(&original, None, None, &file).await.unwrap();

    for (given, kind) in [
        (original.clone(), "results directory"),
        (original.join("cache"), "cache folder"),
        (file.clone(), "bundle"),
    ] {
        let out = dir.path().join(format!("with-{}", kind.replace(' ', "-")));
        let benchmark = Benchmark::open(socratic_local::BenchmarkOptions {
            cache: CacheChoice::At(given.clone()),
            ..options(&out)
        })
        .await
        .unwrap();
        assert_eq!(benchmark.given_cache().unwrap().kind, kind);
        assert!(benchmark.given_cache().unwrap().answers > 0);
        let told = Told::default();
        let done = finished(benchmark.run(&told).await.unwrap());
        assert_eq!(done.called_now, 0, "{kind}: a model was called");
        let (_, hits) = done.cache.clone().unwrap();
        assert!(
            hits.hits > 0 && hits.hits == hits.lookups,
            "{kind}: {hits:?}"
        );
        assert!(told.0.lock().unwrap().is_empty(), "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_without_a_cache_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    for given in [dir.path().join("missing"), dir.path().to_owned()] {
        let error = Benchmark::open(socratic_local::BenchmarkOptions {
            cache: CacheChoice::At(given.clone()),
            ..options(&out)
        })
        .await
        .unwrap_err();
        match error {
            Error::Invalid(message) => {
                assert!(message.contains("holds no response cache"), "{message}");
                assert!(message.contains(&given.display().to_string()), "{message}");
            }
            other => panic!("expected an invalid cache path, got {other:?}"),
        }
        assert!(!out.exists(), "the results directory was created");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_cache_that_answers_nothing_is_told_once_with_its_hit_count() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("cache").join("llm")).unwrap();
    let benchmark = Benchmark::open(socratic_local::BenchmarkOptions {
        cache: CacheChoice::At(empty),
        ..options(&dir.path().join("results"))
    })
    .await
    .unwrap();
    let told = Told::default();
    let done = finished(benchmark.run(&told).await.unwrap());
    let told = told.0.lock().unwrap().clone();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].hits, 0);
    assert!(told[0].lookups >= socratic_local::given_cache::COLD_AFTER);
    // Answers it stored and read again in the same benchmark are not the given cache's hits.
    assert_eq!(done.cache.unwrap().1.hits, 0);
    assert!(done.called_now > 0);
}
