//! Sets up and seeds the AWS resources of a deployment. Reads the usual settings from the
//! environment (`AWS_REGION`, `SOCRATIC_ENDPOINT_URL`, …; see `socratic_aws::AwsSettings`).
//!
//! ```sh
//! socratic-aws-admin create-table --table SocraticBenchmarks
//! socratic-aws-admin create-queues --prefix socratic --visibility-seconds 5400
//! socratic-aws-admin install-catalog --table SocraticBenchmarks --models models.json
//! socratic-aws-admin status 01J… --table SocraticBenchmarks
//! socratic-aws-admin redrive --from "$DIALOGUE_DLQ_URL" --to "$DIALOGUE_QUEUE_URL"
//! socratic-aws-admin backfill --table SocraticBenchmarks
//! ```

// Reporting what was created is what this binary is for.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use socratic_aws::{
    AwsSettings, DynamoStore, SqsQueue, create_queue_with_dead_letter, create_table, sdk_config,
};
use socratic_core::defaults::Defaults;
use socratic_core::entity::{Model, list_from_json};
use socratic_core::id::ManifestId;
use socratic_core::queue::redrive;
use socratic_core::repository::{ManifestStatus, PutOutcome, Repository};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the single table and its five indexes (on-demand billing).
    CreateTable {
        /// Table name.
        #[arg(long)]
        table: String,
    },
    /// Create the dialogue, judge and run-event queues, each with a dead-letter queue.
    CreateQueues {
        /// Name prefix: PREFIX-dialogue-jobs, PREFIX-judge-jobs, PREFIX-run-events.
        #[arg(long, default_value = "socratic")]
        prefix: String,
        /// Deliveries before a message is dead-lettered.
        #[arg(long, default_value_t = 5)]
        max_attempts: u32,
        /// Visibility timeout; at least six times the consuming function's timeout.
        #[arg(long, default_value_t = 5400)]
        visibility_seconds: u64,
    },
    /// A manifest's progress: runs by status, and every failed or skipped run with its stage
    /// and reason.
    Status {
        /// The manifest id.
        manifest: String,
        /// Table name.
        #[arg(long)]
        table: String,
    },
    /// Bring data written by earlier releases up to date: index runs written before the type
    /// index existed (so `GET /runs` lists them), and count the runs of finished manifests
    /// stored before runs were counted (so `GET /manifests/{id}` answers from counts).
    /// Idempotent.
    Backfill {
        /// Table name.
        #[arg(long)]
        table: String,
        /// Only this manifest; every manifest when left out.
        #[arg(long)]
        manifest: Option<String>,
    },
    /// Move messages from a dead-letter queue back to its queue, once their cause is fixed
    /// (each is sent, then deleted: at least once).
    Redrive {
        /// The dead-letter queue's URL.
        #[arg(long)]
        from: String,
        /// The queue it serves.
        #[arg(long)]
        to: String,
        /// Move at most this many.
        #[arg(long, default_value_t = 10_000)]
        max: usize,
    },
    /// Store the default rubric, prompts and scenarios, and the models in a JSON file.
    InstallCatalog {
        /// Table name.
        #[arg(long)]
        table: String,
        /// A JSON array of MODEL entities.
        #[arg(long)]
        models: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = AwsSettings::from_env();
    let sdk = sdk_config(&settings).await;
    match args.command {
        Command::CreateTable { table } => {
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            create_table(&client, &table, &socratic_core::keys::INDEXES)
                .await
                .with_context(|| format!("creating table {table}"))?;
            println!(
                "created table {table} with indexes by_type, by_model, by_manifest, by_vector, by_status"
            );
        }
        Command::CreateQueues {
            prefix,
            max_attempts,
            visibility_seconds,
        } => {
            let client = aws_sdk_sqs::Client::new(&sdk);
            for (name, variable) in [
                ("dialogue-jobs", "SOCRATIC_DIALOGUE_QUEUE_URL"),
                ("judge-jobs", "SOCRATIC_JUDGE_QUEUE_URL"),
                ("run-events", "SOCRATIC_EVENTS_QUEUE_URL"),
            ] {
                let queue = format!("{prefix}-{name}");
                let (url, dlq) = create_queue_with_dead_letter(
                    &client,
                    &queue,
                    max_attempts,
                    Duration::from_secs(visibility_seconds),
                )
                .await
                .with_context(|| format!("creating queue {queue}"))?;
                println!("{variable}={url}    # dead letters: {dlq}");
            }
        }
        Command::Status { manifest, table } => {
            let id: ManifestId = manifest
                .parse()
                .map_err(|e| anyhow::anyhow!("manifest id {manifest:?}: {e}"))?;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            let repository = Repository::new(Arc::new(DynamoStore::new(client, &table)));
            let status = repository
                .manifest_status(&id, usize::MAX)
                .await?
                .with_context(|| format!("manifest {id} is not in table {table}"))?;
            print!("{}", status_report(&status));
        }
        Command::Backfill { table, manifest } => {
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            let repository = Repository::new(Arc::new(DynamoStore::new(client, &table)));
            let ids: Vec<ManifestId> = match manifest {
                Some(text) => vec![
                    text.parse()
                        .map_err(|e| anyhow::anyhow!("manifest id {text:?}: {e}"))?,
                ],
                None => repository
                    .all_manifests()
                    .await
                    .with_context(|| format!("listing the manifests in table {table}"))?
                    .into_iter()
                    .map(|m| m.id)
                    .collect(),
            };
            for id in ids {
                let done = repository
                    .backfill(&id)
                    .await
                    .with_context(|| format!("backfilling manifest {id}"))?;
                let counted = done.recounted.map_or_else(
                    || "not counted: still running".to_owned(),
                    |n| format!("{n} run(s) counted"),
                );
                println!(
                    "manifest {id}: {} run(s) indexed, {} moved meanwhile, {counted}",
                    done.reindexed, done.moved_meanwhile
                );
            }
        }
        Command::Redrive { from, to, max } => {
            let client = aws_sdk_sqs::Client::new(&sdk);
            let (dead, queue) = (
                SqsQueue::new(client.clone(), &from),
                SqsQueue::new(client, &to),
            );
            let moved = redrive(&dead, &queue, max)
                .await
                .with_context(|| format!("moving messages from {from} to {to}"))?;
            println!("moved {moved} message(s) from {from} to {to}");
        }
        Command::InstallCatalog { table, models } => {
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            let repository = Repository::new(Arc::new(DynamoStore::new(client, &table)));
            let defaults = Defaults::load()?;
            let created = defaults.install(&repository).await?;
            println!("default catalog: {created} entities created, the rest already present");
            if let Some(path) = models {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let list: Vec<Model> = list_from_json("model", &text)
                    .with_context(|| format!("parsing {}", path.display()))?;
                for model in &list {
                    let outcome = repository
                        .put_catalog(model)
                        .await
                        .with_context(|| format!("model {}", model.id))?;
                    let word = if outcome == PutOutcome::Created {
                        "created"
                    } else {
                        "unchanged"
                    };
                    println!("model {}: {word}", model.id);
                }
            }
        }
    }
    Ok(())
}

/// The `status` report: progress, runs by status, and the stopped runs with their reasons.
fn status_report(status: &ManifestStatus) -> String {
    let manifest = &status.progress.manifest;
    let mut out = format!(
        "manifest {}: {} of {} run(s) finished{}\n",
        manifest.id,
        status.progress.finished,
        manifest.run_count,
        if status.progress.is_complete() {
            ""
        } else {
            " (still running)"
        }
    );
    for (run_status, count) in &status.by_status {
        out.push_str(&format!("  {:<18} {count}\n", run_status.as_str()));
    }
    for run in &status.stopped {
        let (stage, reason) = run
            .failure
            .as_ref()
            .map_or(("?", "no reason recorded"), |f| {
                (f.stage.as_str(), f.reason.as_str())
            });
        out.push_str(&format!(
            "  {} {} {} {}#{}: {stage}: {reason}\n",
            run.id,
            run.status.as_str(),
            run.tutor.model,
            run.scenario,
            run.repetition
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use socratic_core::entity::{ManifestRequest, Model, from_json, list_from_json};

    /// The example files the deployment guide and the scheduled benchmark use are valid, and
    /// the manifest names only models of the example catalog, none judging its own tutoring.
    #[test]
    fn the_example_manifest_and_models_are_valid_together() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"));
        let models: Vec<Model> = list_from_json(
            "model",
            &std::fs::read_to_string(format!("{dir}/models.example.json")).expect("read"),
        )
        .expect("models parse");
        let request: ManifestRequest = from_json(
            "manifest",
            &std::fs::read_to_string(format!("{dir}/manifest.example.json")).expect("read"),
        )
        .expect("manifest parses");
        let known = |id: &socratic_core::id::ModelId| models.iter().any(|m| &m.id == id);
        let mut named = request.tutors.iter().map(|t| &t.model).collect::<Vec<_>>();
        named.extend(request.judges.iter().map(|j| &j.model));
        named.extend(request.student.iter().map(|s| &s.model));
        for id in named {
            assert!(known(id), "{id} is not in models.example.json");
        }
        for judge in &request.judges {
            assert!(
                request.tutors.iter().all(|t| t.model != judge.model),
                "{} judges its own tutoring",
                judge.model
            );
        }
    }
}
