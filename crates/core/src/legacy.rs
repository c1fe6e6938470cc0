//! Moving kv keys from plain names to sealed ones (SPEC.md §4.4): which renames the
//! SDK asks for, page by page, given what the accelerator lists as legacy. A key's
//! names are sealed only if its value opens under them, so an accelerator listing
//! guessed names learns nothing of what they seal to.

use std::collections::HashSet;

use crate::kv::{KvError, KvKeys, KvScope};
use crate::names::NameKeys;
use crate::proto::{KvKeyRequest, KvLegacyKey, KvRename, MAX_RENAMES};
use crate::validate::{self, ValidationError};
use crate::{Coded, ErrorCode};

/// Why a legacy page was refused: the accelerator misbehaves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LegacyError {
    /// More keys than a page holds.
    #[error("the accelerator listed {0} legacy kv keys in one page; at most {MAX_RENAMES}")]
    TooMany(usize),
    /// Names no SDK would have accepted.
    #[error("the accelerator listed a legacy kv key no SDK could have written ({0})")]
    Name(ValidationError),
    /// A value that does not open under the key's names: not this account's there.
    #[error(
        "the accelerator listed a legacy kv key {collection}/{id} whose value this account did not write there ({error})"
    )]
    NotOurs {
        /// The listed collection.
        collection: String,
        /// The listed id.
        id: String,
        /// Why the value did not open.
        error: KvError,
    },
}

impl Coded for LegacyError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        ErrorCode::Integrity
    }
}

/// One account's move, across the pages it reads.
pub struct Move<'a> {
    user_id: &'a str,
    kv: &'a KvKeys,
    names: &'a NameKeys,
    renamed: HashSet<(String, String)>,
}

impl<'a> Move<'a> {
    /// A move for the account `user_id` with these keys.
    pub fn new(user_id: &'a str, kv: &'a KvKeys, names: &'a NameKeys) -> Self {
        Move { user_id, kv, names, renamed: HashSet::new() }
    }

    /// The renames a page of legacy keys asks for; `None` when the move is over: the
    /// page holds no key but those this move renamed already. Such a key was written
    /// again under its plain names meanwhile, by an older SDK, and waits for the next
    /// move; so the move ends, even against an accelerator that lists keys forever.
    pub fn renames(&mut self, page: Vec<KvLegacyKey>) -> Result<Option<Vec<KvRename>>, LegacyError> {
        if page.len() > MAX_RENAMES {
            return Err(LegacyError::TooMany(page.len()));
        }
        let mut renames = Vec::with_capacity(page.len());
        for key in page {
            self.check(&key)?;
            let KvLegacyKey { collection, id, .. } = key;
            if !self.renamed.insert((collection.clone(), id.clone())) {
                continue;
            }
            let to = KvKeyRequest {
                collection: self.names.seal_collection(&collection),
                id: self.names.seal_id(&collection, &id),
            };
            renames.push(KvRename { from: KvKeyRequest { collection, id }, to });
        }
        Ok((!renames.is_empty()).then_some(renames))
    }

    /// A key this account wrote: names an SDK accepts, and a value that opens under
    /// them.
    fn check(&self, key: &KvLegacyKey) -> Result<(), LegacyError> {
        validate::any_collection(&key.collection).and_then(|()| validate::id(&key.id)).map_err(LegacyError::Name)?;
        let scope = KvScope { user_id: self.user_id, collection: &key.collection, id: &key.id };
        self.kv.decode(&scope, &key.value).map_err(|error| LegacyError::NotOurs {
            collection: key.collection.clone(),
            id: key.id.clone(),
            error,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::RootSecret;

    struct Account {
        kv: KvKeys,
        names: NameKeys,
    }

    fn account(byte: u8) -> Account {
        let root = RootSecret::from_bytes([byte; 32]);
        Account { kv: KvKeys::derive(&root), names: NameKeys::derive(&root) }
    }

    fn key(a: &Account, collection: &str, id: &str, encrypt: bool) -> KvLegacyKey {
        let scope = KvScope { user_id: "u1", collection, id };
        KvLegacyKey { collection: collection.into(), id: id.into(), value: a.kv.encode(&scope, "1", encrypt, [7; 12]) }
    }

    #[test]
    fn a_page_of_the_accounts_keys_seals_their_names() {
        let a = account(1);
        let mut moving = Move::new("u1", &a.kv, &a.names);
        let renames =
            moving.renames(vec![key(&a, "todos", "t1", true), key(&a, "medical", "x", false)]).unwrap().unwrap();
        assert_eq!(renames.len(), 2);
        assert_eq!(renames[0].from, KvKeyRequest { collection: "todos".into(), id: "t1".into() });
        assert_eq!(a.names.open_collection(&renames[0].to.collection).unwrap(), "todos");
        assert_eq!(a.names.open_id("medical", &renames[1].to.id).unwrap(), "x");
        assert_eq!(moving.renames(vec![]).unwrap(), None, "an empty page ends the move");
    }

    #[test]
    fn a_key_listed_again_is_not_renamed_again() {
        let a = account(1);
        let mut moving = Move::new("u1", &a.kv, &a.names);
        moving.renames(vec![key(&a, "todos", "t1", true)]).unwrap().unwrap();
        let next = moving.renames(vec![key(&a, "todos", "t1", true), key(&a, "todos", "t2", true)]).unwrap().unwrap();
        assert_eq!(next.iter().map(|r| r.from.id.as_str()).collect::<Vec<_>>(), ["t2"]);
        assert_eq!(moving.renames(vec![key(&a, "todos", "t1", true)]).unwrap(), None, "nothing new: over");
    }

    #[test]
    fn guessed_names_are_never_sealed() {
        let a = account(1);
        let mut moving = Move::new("u1", &a.kv, &a.names);
        // A real value under other names, another account's value, another user id's.
        let mut moved = key(&a, "todos", "t1", true);
        moved.id = "hiv-test".into();
        let theirs = key(&account(2), "medical", "x", true);
        let mut other_user = Move::new("u2", &a.kv, &a.names);
        for listed in [moved, theirs.clone()] {
            assert!(matches!(moving.renames(vec![listed]), Err(LegacyError::NotOurs { .. })));
        }
        assert!(matches!(other_user.renames(vec![key(&a, "medical", "x", false)]), Err(LegacyError::NotOurs { .. })));
        let bad_name = KvLegacyKey { id: "a\nb".into(), ..theirs };
        assert!(matches!(moving.renames(vec![bad_name]), Err(LegacyError::Name(_))));
        let too_many = vec![key(&a, "todos", "t1", true); MAX_RENAMES + 1];
        assert_eq!(moving.renames(too_many), Err(LegacyError::TooMany(MAX_RENAMES + 1)));
    }
}
