//! The records' wire forms: what the routes answer with, built from what the store
//! returns, so the store knows nothing of the JSON the SDK reads (SPEC.md §7).

use coffer_core::b64;
use coffer_core::proto::storage::{EpochLink, FileEntry, SpaceInfo, SpaceKeysResponse};
use coffer_core::proto::{ChangeEvent, ChangeOp, KvValue};

use crate::store::{Change, FileRecord, KeyState, Membership, StoredValue};

impl From<&StoredValue> for KvValue {
    fn from(value: &StoredValue) -> KvValue {
        match value {
            StoredValue::Sealed(bytes) => KvValue::Sealed { envelope: b64::encode(bytes) },
            StoredValue::Plain { json, mac } => KvValue::Plain { json: json.clone(), mac: b64::encode(mac) },
        }
    }
}

impl From<&Change> for ChangeEvent {
    fn from(change: &Change) -> ChangeEvent {
        ChangeEvent {
            seq: change.seq,
            collection: change.collection.clone(),
            id: change.id.clone(),
            op: if change.value.is_some() { ChangeOp::Set } else { ChangeOp::Delete },
            value: change.value.as_ref().map(KvValue::from),
        }
    }
}

impl From<&Membership> for SpaceInfo {
    fn from(space: &Membership) -> SpaceInfo {
        SpaceInfo {
            space_id: space.space_id.clone(),
            sealed_name: b64::encode(&space.sealed_name),
            role: space.role,
            created_at_ms: space.created_at_ms,
            epoch: space.epoch,
            rotation_due: space.rotation_due,
            in_roster: space.in_roster,
        }
    }
}

impl From<&FileRecord> for FileEntry {
    fn from(file: &FileRecord) -> FileEntry {
        FileEntry {
            space_id: file.space_id.clone(),
            file_id: file.file_id.clone(),
            sealed_record: b64::encode(&file.sealed_record),
            stored_bytes: file.stored_bytes,
            created_by: file.created_by.clone(),
            created_at_ms: file.created_at_ms,
            epoch: file.epoch,
        }
    }
}

impl From<&KeyState> for SpaceKeysResponse {
    fn from(keys: &KeyState) -> SpaceKeysResponse {
        SpaceKeysResponse {
            epoch: keys.epoch,
            rotation_due: keys.rotation_due,
            in_roster: keys.in_roster,
            sealed_name: b64::encode(&keys.sealed_name),
            sealed_key: keys.sealed_key.as_ref().map(b64::encode),
            links: keys
                .links
                .iter()
                .map(|l| EpochLink { epoch: l.epoch, sealed_previous: b64::encode(&l.sealed_previous) })
                .collect(),
        }
    }
}
