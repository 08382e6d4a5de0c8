//! How entities are stored: each kind's keys in the single table, from the key schema.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    HumanLabels, Judgment, Manifest, ManifestSummary, Model, ModelSummary, Prompt, Rubric, Run,
    RunSummary, Scenario, Turn, Validate, VectorSummary,
};
use crate::id::{ModelId, PromptId, RubricId, ScenarioId};
use crate::keys::{self, EntityKind};
use crate::store::{Index, IndexKey, Key};

/// Something the repository can store.
pub trait Entity: Serialize + DeserializeOwned + Validate + Clone + Send + Sync + 'static {
    /// Its kind.
    const KIND: EntityKind;

    /// Its primary key.
    fn key(&self) -> Key;

    /// Its index keys.
    fn index_keys(&self) -> Vec<(Index, IndexKey)> {
        Vec::new()
    }
}

/// An immutable, content-addressed catalog entity.
pub trait CatalogEntity: Entity {
    /// Its id type.
    type Id: ToString + Send + Sync;

    /// Its id.
    fn id(&self) -> &Self::Id;

    /// The key of the entity with this id.
    fn key_of(id: &Self::Id) -> Key;
}

macro_rules! catalog_entity {
    ($ty:ty, $id:ty, $kind:expr, $key:path) => {
        impl Entity for $ty {
            const KIND: EntityKind = $kind;
            fn key(&self) -> Key {
                $key(&self.id)
            }
            fn index_keys(&self) -> Vec<(Index, IndexKey)> {
                vec![keys::catalog_type_index($kind, self.id.as_str())]
            }
        }

        impl CatalogEntity for $ty {
            type Id = $id;
            fn id(&self) -> &$id {
                &self.id
            }
            fn key_of(id: &$id) -> Key {
                $key(id)
            }
        }
    };
}

catalog_entity!(Prompt, PromptId, EntityKind::Prompt, keys::prompt);
catalog_entity!(Rubric, RubricId, EntityKind::Rubric, keys::rubric);
catalog_entity!(Scenario, ScenarioId, EntityKind::Scenario, keys::scenario);
catalog_entity!(Model, ModelId, EntityKind::Model, keys::model);

impl Entity for Manifest {
    const KIND: EntityKind = EntityKind::Manifest;
    fn key(&self) -> Key {
        keys::manifest(&self.id)
    }
    fn index_keys(&self) -> Vec<(Index, IndexKey)> {
        vec![keys::manifest_type_index(&self.id, self.created_at)]
    }
}

impl Entity for Run {
    const KIND: EntityKind = EntityKind::Run;
    fn key(&self) -> Key {
        keys::run(&self.id)
    }
    fn index_keys(&self) -> Vec<(Index, IndexKey)> {
        keys::run_index_keys(
            &self.id,
            &self.manifest,
            &self.tutor.model,
            self.vector.as_str(),
            self.status.as_str(),
            self.created_at,
            self.updated_at,
        )
    }
}

impl Entity for Turn {
    const KIND: EntityKind = EntityKind::Turn;
    fn key(&self) -> Key {
        keys::turn(&self.run, self.index)
    }
}

impl Entity for Judgment {
    const KIND: EntityKind = EntityKind::Judgment;
    fn key(&self) -> Key {
        keys::judgment(&self.run, self.turn, &self.judge)
    }
}

impl Entity for RunSummary {
    const KIND: EntityKind = EntityKind::RunSummary;
    fn key(&self) -> Key {
        keys::run_summary(&self.run)
    }
}

impl Entity for ManifestSummary {
    const KIND: EntityKind = EntityKind::ManifestSummary;
    fn key(&self) -> Key {
        keys::manifest_summary(&self.manifest)
    }
}

impl Entity for ModelSummary {
    const KIND: EntityKind = EntityKind::ModelSummary;
    fn key(&self) -> Key {
        keys::model_summary(&self.manifest, &self.model)
    }
}

impl Entity for VectorSummary {
    const KIND: EntityKind = EntityKind::VectorSummary;
    fn key(&self) -> Key {
        keys::vector_summary(&self.manifest, self.vector.as_str())
    }
}

impl Entity for HumanLabels {
    const KIND: EntityKind = EntityKind::HumanLabels;
    fn key(&self) -> Key {
        keys::human_labels(&self.manifest)
    }
}
