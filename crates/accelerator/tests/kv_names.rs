//! Sealed kv names over real HTTP: keys an accelerator stored before sealed names, and
//! keys an old SDK writes since under names without a sealed name's shape, are legacy
//! (`GET /v1/kv/legacy`, each with its value, a page held to a byte cap) until the SDK
//! moves them to their sealed names (`POST /v1/kv/rename`) with their values, their
//! change-log entries and what they cost; and names as long as a sealed one are
//! accepted everywhere a key is named.

mod common;

use coffer_accelerator::store::postgres::PgRecords;
use coffer_accelerator::store::sqlite::SqliteRecords;
use coffer_accelerator::store::{Accounts, StoredValue, kv_cost, value_bytes};
use coffer_core::account::RootSecret;
use coffer_core::b64;
use coffer_core::kv::KvKeys;
use coffer_core::names::NameKeys;
use coffer_core::proto::*;
use coffer_core::validate::MAX_STORED_NAME_BYTES;
use coffer_core::{ErrorCode, ErrorCode::InvalidInput};
use common::*;

/// The rows an accelerator of the schema before sealed names left: accounts whose
/// keys are stored under the names their SDK sent in the clear.
mod before_sealed_names {
    use super::*;
    use common::old_schema::{blob, user_insert};

    /// One key as the old accelerator stored it.
    pub struct OldKey {
        /// Its collection, in the clear.
        pub collection: String,
        /// Its id, in the clear.
        pub id: String,
        /// Its value.
        pub value: StoredValue,
        /// Its change-log entry's sequence number.
        pub seq: u64,
    }

    impl OldKey {
        /// Its names as a request names them.
        pub fn key(&self) -> KvKeyRequest {
            KvKeyRequest { collection: self.collection.clone(), id: self.id.clone() }
        }
    }

    /// An account of the old schema: it signs in with the password "pw".
    pub struct OldUser {
        /// Its username.
        pub name: String,
        /// Its root secret.
        pub root: RootSecret,
        /// Its keys, in the order they were written (sequence numbers 1, 2, …).
        pub keys: Vec<OldKey>,
        /// Its kv sequence number: its last key's, or past it when a delete followed.
        pub kv_seq: u64,
    }

    /// A sealed value of `len` random bytes.
    pub fn sealed_value(len: usize) -> StoredValue {
        let mut bytes = vec![0u8; len];
        getrandom::fill(&mut bytes).unwrap();
        StoredValue::Sealed(bytes)
    }

    /// Ada, with four keys (plain and sealed, written out of order: the list is in
    /// order of collection, then id) and the delete of a fifth; bob, with one key of
    /// his own; carol, with `MAX_RENAMES + 1` keys.
    pub fn users() -> Vec<OldUser> {
        let old = |collection: &str, id: &str, value: StoredValue, seq: u64| OldKey {
            collection: collection.into(),
            id: id.into(),
            value,
            seq,
        };
        let ada = vec![
            old("todos", "t2", StoredValue::Plain { json: r#"{"title":"Ship"}"#.into(), mac: [7; 32] }, 1),
            old("zeta", "a", sealed_value(50), 2),
            old("notes", "n1", sealed_value(80), 3),
            old("todos", "t1", sealed_value(60), 4),
        ];
        let bob = vec![old("bobs", "b1", sealed_value(40), 1)];
        let carol = (0..=MAX_RENAMES as u64).map(|n| old("c", &format!("k{n:04}"), sealed_value(30), n + 1)).collect();
        let user = |name: &str, keys: Vec<OldKey>, deletes: u64| OldUser {
            name: name.into(),
            root: RootSecret::from_bytes(random()),
            kv_seq: keys.len() as u64 + deletes,
            keys,
        };
        vec![user("ada", ada, 1), user("bob", bob, 0), user("carol", carol, 0)]
    }

    /// A stored value's three columns as SQL literals.
    fn value_sql(value: &StoredValue, postgres: bool) -> String {
        match value {
            StoredValue::Sealed(bytes) => format!("{}, NULL, NULL", blob(bytes, postgres)),
            StoredValue::Plain { json, mac } => format!("NULL, '{json}', {}", blob(mac, postgres)),
        }
    }

    /// The INSERTs of `users` in the backend's SQL: each account, charged what its
    /// keys cost, its keys, and its change log (a user who deleted a key has the
    /// delete's entry last).
    pub fn rows(users: &[OldUser], postgres: bool) -> String {
        let mut sql = String::new();
        for user in users {
            let used: u64 = user.keys.iter().map(|k| kv_cost(&k.collection, &k.id, &k.value)).sum();
            let id = format!("id-{}", user.name);
            sql += &user_insert(&id, &user.name, &user.root, (user.kv_seq, used), postgres);
            for key in &user.keys {
                let (c, i, value) = (&key.collection, &key.id, value_sql(&key.value, postgres));
                sql += &format!(
                    "INSERT INTO kv (user_id, collection, id, sealed, plain_json, plain_mac) VALUES ('{id}', '{c}', '{i}', {value});
                     INSERT INTO kv_changes (user_id, seq, collection, id, sealed, plain_json, plain_mac)
                     VALUES ('{id}', {}, '{c}', '{i}', {value});\n",
                    key.seq
                );
            }
            if user.kv_seq > user.keys.len() as u64 {
                sql += &format!(
                    "INSERT INTO kv_changes (user_id, seq, collection, id) VALUES ('{id}', {}, 'todos', 'gone');\n",
                    user.kv_seq
                );
            }
        }
        sql
    }
}

use before_sealed_names::{OldKey, OldUser};

/// An accelerator started on the old rows of `users` (SQLite schema 7, PostgreSQL
/// schema 5: the last ones before sealed names), with `tweak` applied to its
/// config. Each user is signed in.
async fn upgraded(
    users: &[OldUser],
    tweak: impl FnOnce(&mut coffer_accelerator::Config),
) -> (TestServer, Vec<Account>) {
    let sql = before_sealed_names::rows(users, remote_backend());
    let server = common::old_schema::server_with(7, 5, &sql, tweak).await;
    let api = server.api();
    let mut accounts = Vec::new();
    for user in users {
        let session = sign_in(&api, &user.name, "pw").await.expect("an old account signs in");
        assert_eq!(session.kv_seq, user.kv_seq);
        let root = RootSecret::from_bytes(*user.root.as_bytes());
        accounts.push(Account {
            username: user.name.clone(),
            password: "pw".into(),
            session,
            keys: KvKeys::derive(&root),
            root,
        });
    }
    (server, accounts)
}

/// `GET /v1/kv/legacy` for `account`: each legacy key with its value.
async fn legacy_page(api: &Api, account: &Account) -> Vec<KvLegacyKey> {
    account.get_json::<KvLegacyResponse>(api, "/v1/kv/legacy").await.expect("legacy keys").keys
}

/// The names of `account`'s first page of legacy keys.
async fn legacy(api: &Api, account: &Account) -> Vec<KvKeyRequest> {
    legacy_page(api, account).await.into_iter().map(|k| KvKeyRequest { collection: k.collection, id: k.id }).collect()
}

/// A legacy key as the legacy page lists it.
fn listed(key: &OldKey) -> KvLegacyKey {
    KvLegacyKey { collection: key.collection.clone(), id: key.id.clone(), value: wire(&key.value) }
}

/// `POST /v1/kv/rename` for `account`: the answer or the error.
async fn rename(api: &Api, account: &Account, renames: Vec<KvRename>) -> Result<KvRenameResponse, ErrorBody> {
    api.call("/v1/kv/rename", Some(account.token()), &KvRenameRequest { renames }).await
}

/// `collection` and `id` sealed under `account`'s keys, as the SDK sends them.
fn sealed(account: &Account, collection: &str, id: &str) -> KvKeyRequest {
    let names = NameKeys::derive(&account.root);
    KvKeyRequest { collection: names.seal_collection(collection), id: names.seal_id(collection, id) }
}

/// The rename of `from` to its sealed names under `account`'s keys, as the SDK makes it.
fn to_sealed(account: &Account, from: &KvKeyRequest) -> KvRename {
    KvRename { from: from.clone(), to: sealed(account, &from.collection, &from.id) }
}

/// The raw value stored at `key`, as `POST /v1/kv/get` answers it.
async fn raw_get(api: &Api, account: &Account, key: &KvKeyRequest) -> Option<KvValue> {
    let answer: KvGetResponse = api.call("/v1/kv/get", Some(account.token()), key).await.expect("kv get");
    answer.value
}

/// A value as the routes answer it.
fn wire(value: &StoredValue) -> KvValue {
    KvValue::from(value)
}

/// A value answered, in its stored form.
fn stored(value: &KvValue) -> StoredValue {
    match value {
        KvValue::Sealed { envelope } => StoredValue::Sealed(b64::decode(envelope).unwrap()),
        KvValue::Plain { json, mac } => StoredValue::Plain { json: json.clone(), mac: b64::decode_array(mac).unwrap() },
    }
}

/// What the records charge `user_id`, read from the server's database as the
/// store answers it (no route tells it).
async fn used_bytes(server: &TestServer, user_id: &str) -> u64 {
    match &server.data {
        Data::Remote { db, .. } => PgRecords::connect(&db.url(), 10).await.unwrap().used_bytes(user_id).await.unwrap(),
        Data::Embedded => SqliteRecords::open(server.dir.path(), 10).unwrap().used_bytes(user_id).await.unwrap(),
    }
}

/// What the keys `account` stores at `keys` cost, read back through the routes.
async fn cost_of(api: &Api, account: &Account, keys: &[KvKeyRequest]) -> u64 {
    let mut cost = 0;
    for key in keys {
        let value = raw_get(api, account, key).await.expect("stored");
        cost += kv_cost(&key.collection, &key.id, &stored(&value));
    }
    cost
}

/// The whole change log replayed from the start (`since: 0`): the head, and each
/// change as (seq, collection, id, value).
async fn replay(
    server: &TestServer,
    account: &Account,
    changes: usize,
) -> (u64, Vec<(u64, KvKeyRequest, Option<KvValue>)>) {
    let (mut feed, head) = Feed::open(server, account.token(), Some(0)).await;
    let mut seen = Vec::new();
    for _ in 0..changes {
        let event = feed.change().await;
        seen.push((event.seq, KvKeyRequest { collection: event.collection, id: event.id }, event.value));
    }
    (head, seen)
}

/// The session's kv sequence number.
async fn kv_seq(api: &Api, account: &Account) -> u64 {
    account.get_json::<SessionInfo>(api, "/v1/auth/session").await.expect("session").kv_seq
}

#[tokio::test]
async fn keys_from_before_sealed_names_are_listed_as_legacy_to_their_owner_only() {
    let users = before_sealed_names::users();
    let (server, accounts) = upgraded(&users, |_| {}).await;
    let api = server.api();
    let [ada, bob, carol] = &accounts[..] else { unreachable!() };

    // Ordered by collection, then id, each with its value exactly as stored (sealed
    // or plain); each user sees only their own.
    let expected = |user: &OldUser| {
        let mut keys: Vec<KvLegacyKey> = user.keys.iter().map(listed).collect();
        keys.sort_by(|a, b| (&a.collection, &a.id).cmp(&(&b.collection, &b.id)));
        keys
    };
    let adas = legacy_page(&api, ada).await;
    let names: Vec<(&str, &str)> = adas.iter().map(|k| (k.collection.as_str(), k.id.as_str())).collect();
    assert_eq!(names, [("notes", "n1"), ("todos", "t1"), ("todos", "t2"), ("zeta", "a")]);
    assert_eq!(adas, expected(&users[0]));
    assert!(matches!(adas[2].value, KvValue::Plain { .. }) && matches!(adas[0].value, KvValue::Sealed { .. }));
    assert_eq!(legacy_page(&api, bob).await, expected(&users[1]));
    // At most MAX_RENAMES, the first ones.
    let carols = legacy_page(&api, carol).await;
    assert_eq!(carols.len(), MAX_RENAMES);
    assert_eq!(carols, expected(&users[2])[..MAX_RENAMES]);

    // The old values read back as they were.
    for key in &users[0].keys {
        assert_eq!(raw_get(&api, ada, &key.key()).await, Some(wire(&key.value)), "{}/{}", key.collection, key.id);
    }

    // Keys written since under sealed names are not legacy, whoever writes them; a
    // legacy key written again is legacy still, with its new value.
    let t3 = sealed(ada, "todos", "t3");
    ada.set(&api, &t3.collection, &t3.id, r#""new""#, true).await;
    let rewrite = ada.set_request("zeta", "a", r#""rewritten""#, true);
    let _: KvWriteResponse = api.call("/v1/kv/set", Some(ada.token()), &rewrite).await.unwrap();
    let mut rewritten = adas.clone();
    rewritten[3].value = rewrite.value;
    assert_eq!(legacy_page(&api, ada).await, rewritten);
    let dan = sign_up(&api, "dan", "pw").await;
    let t1 = sealed(&dan, "todos", "t1");
    dan.set(&api, &t1.collection, &t1.id, "1", true).await;
    assert!(legacy(&api, &dan).await.is_empty());
    assert_eq!(legacy_page(&api, bob).await, expected(&users[1]));

    // Without a session, nothing.
    Api::expect_error(api.get("/v1/kv/legacy", None).await, ErrorCode::Unauthorized);
}

#[tokio::test]
async fn a_rename_moves_the_value_and_keeps_its_change_log_entry() {
    let users = before_sealed_names::users();
    let (server, accounts) = upgraded(&users, |_| {}).await;
    let api = server.api();
    let ada = &accounts[0];
    let t1 = &users[0].keys[3];
    assert_eq!((t1.collection.as_str(), t1.id.as_str(), t1.seq), ("todos", "t1", 4));
    let moved = to_sealed(ada, &t1.key());
    let (head, before) = replay(&server, ada, 5).await;
    assert_eq!(head, 5);

    let answer = rename(&api, ada, vec![moved.clone()]).await.unwrap();
    assert_eq!((answer.renamed, answer.dropped), (1, 0));

    // The value is under its sealed names only.
    assert_eq!(raw_get(&api, ada, &moved.to).await, Some(wire(&t1.value)));
    assert_eq!(raw_get(&api, ada, &moved.from).await, None);
    assert_eq!(ada.list(&api, &moved.to.collection).await, [moved.to.id.as_str()]);
    assert_eq!(ada.list(&api, "todos").await, ["t2"]);
    assert!(!legacy(&api, ada).await.contains(&moved.from));
    assert_eq!(legacy(&api, ada).await.len(), 3);

    // The log names it anew under the same sequence number; nothing else changed, and
    // no change was added.
    let (head, after) = replay(&server, ada, 5).await;
    assert_eq!(head, 5, "the head is unchanged");
    assert_eq!(kv_seq(&api, ada).await, 5);
    let expected: Vec<_> = before
        .iter()
        .map(|(seq, key, value)| {
            let key = if *key == moved.from { moved.to.clone() } else { key.clone() };
            (*seq, key, value.clone())
        })
        .collect();
    assert_eq!(after, expected);
    assert_eq!(after[3], (4, moved.to.clone(), Some(wire(&t1.value))));
    let t9 = sealed(ada, "todos", "t9");
    assert_eq!(ada.set(&api, &t9.collection, &t9.id, "1", true).await, 6, "the next change follows the head");

    // Renaming to the same names only stops the key being legacy.
    let n1 = users[0].keys[2].key();
    let same = KvRename { from: n1.clone(), to: n1.clone() };
    let answer = rename(&api, ada, vec![same]).await.unwrap();
    assert_eq!((answer.renamed, answer.dropped), (1, 0));
    assert_eq!(raw_get(&api, ada, &n1).await, Some(wire(&users[0].keys[2].value)));
    let left = legacy(&api, ada).await;
    assert_eq!(left, [users[0].keys[0].key(), users[0].keys[1].key()], "todos/t2 and zeta/a are left");
}

#[tokio::test]
async fn a_rename_onto_a_taken_key_drops_the_legacy_one() {
    let users = before_sealed_names::users();
    let (server, accounts) = upgraded(&users, |_| {}).await;
    let api = server.api();
    let ada = &accounts[0];
    let t2 = &users[0].keys[0];
    let taken = to_sealed(ada, &t2.key());
    // A device with sealed names wrote the key before the migration reached it.
    let set = ada.set_request(&taken.to.collection, &taken.to.id, r#""newer""#, true);
    let newer = set.value.clone();
    let seq: KvWriteResponse = api.call("/v1/kv/set", Some(ada.token()), &set).await.unwrap();
    assert_eq!(seq.seq, 6);

    let answer = rename(&api, ada, vec![taken.clone()]).await.unwrap();
    assert_eq!((answer.renamed, answer.dropped), (0, 1));
    assert_eq!(raw_get(&api, ada, &taken.to).await, Some(newer.clone()), "the sealed key stands");
    assert_eq!(raw_get(&api, ada, &taken.from).await, None);
    assert!(!legacy(&api, ada).await.contains(&taken.from));

    // Its log entry is gone, and no delete was logged for it.
    let (head, log) = replay(&server, ada, 5).await;
    assert_eq!(head, 6);
    let seqs: Vec<u64> = log.iter().map(|(seq, ..)| *seq).collect();
    assert_eq!(seqs, [2, 3, 4, 5, 6]);
    assert!(log.iter().all(|(_, key, _)| *key != taken.from), "{:?}", log);
    assert_eq!(log[4], (6, taken.to.clone(), Some(newer)));

    // What ada is charged is what she stores.
    let stored: Vec<KvKeyRequest> = users[0].keys[1..].iter().map(OldKey::key).chain([taken.to.clone()]).collect();
    assert_eq!(used_bytes(&server, ada.user_id()).await, cost_of(&api, ada, &stored).await);
}

#[tokio::test]
async fn renames_of_keys_that_are_not_legacy_change_nothing() {
    let users = before_sealed_names::users();
    let (server, accounts) = upgraded(&users, |_| {}).await;
    let api = server.api();
    let [ada, bob, _] = &accounts[..] else { unreachable!() };
    let fresh = sealed(ada, "todos", "t3");
    ada.set(&api, &fresh.collection, &fresh.id, r#""since""#, true).await;
    let fresh_value = raw_get(&api, ada, &fresh).await;
    let bobs = users[1].keys[0].key();
    let absent = KvKeyRequest { collection: "todos".into(), id: "never".into() };
    let used = used_bytes(&server, ada.user_id()).await;
    let bob_used = used_bytes(&server, bob.user_id()).await;
    let (_, log) = replay(&server, ada, 6).await;

    // A key written since, a key absent, another user's key.
    let renames = [&fresh, &absent, &bobs].map(|key| to_sealed(ada, key)).to_vec();
    let answer = rename(&api, ada, renames.clone()).await.unwrap();
    assert_eq!((answer.renamed, answer.dropped), (0, 0));
    for skipped in &renames {
        assert_eq!(raw_get(&api, ada, &skipped.to).await, None);
    }
    assert_eq!(raw_get(&api, ada, &fresh).await, fresh_value);
    assert_eq!(raw_get(&api, ada, &bobs).await, None);
    assert_eq!(raw_get(&api, bob, &bobs).await, Some(wire(&users[1].keys[0].value)), "bob's key is untouched");
    assert_eq!(legacy(&api, bob).await, std::slice::from_ref(&bobs));
    assert_eq!(used_bytes(&server, ada.user_id()).await, used);
    assert_eq!(used_bytes(&server, bob.user_id()).await, bob_used);
    assert_eq!(replay(&server, ada, 6).await, (6, log.clone()));

    // A key renamed once is no longer legacy: renamed again, it is skipped.
    let t1 = to_sealed(ada, &users[0].keys[3].key());
    let twice = rename(&api, ada, vec![t1.clone(), t1.clone()]).await.unwrap();
    assert_eq!((twice.renamed, twice.dropped), (1, 0));
    let again = rename(&api, ada, vec![t1.clone()]).await.unwrap();
    assert_eq!((again.renamed, again.dropped), (0, 0));
    assert_eq!(raw_get(&api, ada, &t1.to).await, Some(wire(&users[0].keys[3].value)));
}

#[tokio::test]
async fn renames_are_metered_by_their_new_names_and_never_refused() {
    let users = before_sealed_names::users();
    // An allowance the old keys already exceed.
    let (server, accounts) = upgraded(&users, |c| c.user_allowance_bytes = 100).await;
    let api = server.api();
    let ada = &accounts[0];
    let used = used_bytes(&server, ada.user_id()).await;
    assert!(used > 100, "{used}");
    let set = ada.set_request("todos", "t9", r#""more""#, true);
    let refused = api.call::<KvWriteResponse>("/v1/kv/set", Some(ada.token()), &set).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::QuotaExceeded);

    // Every legacy key to its sealed names, one to its own: the sealed names are
    // longer, and the growth is charged all the same.
    let mut renames: Vec<KvRename> = legacy(&api, ada).await.iter().map(|key| to_sealed(ada, key)).collect();
    renames[0].to = renames[0].from.clone();
    let answer = rename(&api, ada, renames.clone()).await.unwrap();
    assert_eq!((answer.renamed, answer.dropped), (4, 0));
    assert!(legacy(&api, ada).await.is_empty());
    let stored: Vec<KvKeyRequest> = renames.iter().map(|r| r.to.clone()).collect();
    let cost = cost_of(&api, ada, &stored).await;
    assert!(cost > used, "sealed names cost more: {cost} ≤ {used}");
    assert_eq!(used_bytes(&server, ada.user_id()).await, cost);

    // Deleting gives back what the new names cost, to the byte.
    for key in &stored {
        ada.delete(&api, &key.collection, &key.id).await;
    }
    assert_eq!(used_bytes(&server, ada.user_id()).await, 0);
}

#[tokio::test]
async fn names_up_to_a_sealed_names_length_are_accepted_and_no_longer() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let t = Some(ada.token());
    let longest = |c: char| c.to_string().repeat(MAX_STORED_NAME_BYTES);
    let (collection, first, second) = (longest('c'), longest('a'), longest('b'));
    let over = "x".repeat(MAX_STORED_NAME_BYTES + 1);

    // The longest names work for set, get and list, and as a list's cursor.
    ada.set(&api, &collection, &second, r#""2""#, true).await;
    ada.set(&api, &collection, &first, r#""1""#, true).await;
    assert_eq!(ada.get(&api, &collection, &first).await.as_deref(), Some(r#""1""#));
    let page = |after: Option<String>| KvListRequest {
        collection: collection.clone(),
        page: PageQuery { after, limit: Some(1) },
    };
    let one: KvListResponse = api.call("/v1/kv/list", t, &page(None)).await.unwrap();
    assert_eq!((one.ids, one.next.as_deref()), (vec![first.clone()], Some(first.as_str())));
    let two: KvListResponse = api.call("/v1/kv/list", t, &page(one.next)).await.unwrap();
    assert_eq!(two.ids, [second.as_str()]);
    let past: KvListResponse = api.call("/v1/kv/list", t, &page(Some(second.clone()))).await.unwrap();
    assert!(past.ids.is_empty());

    // One byte more is refused wherever a key is named, and as a cursor.
    for (c, i) in [(over.as_str(), "i"), ("c", over.as_str())] {
        let set = ada.set_request(c, i, "1", true);
        Api::expect_error(api.post("/v1/kv/set", t, &set).await, InvalidInput);
        let key = KvKeyRequest { collection: c.into(), id: i.into() };
        Api::expect_error(api.post("/v1/kv/get", t, &key).await, InvalidInput);
        Api::expect_error(api.post("/v1/kv/delete", t, &key).await, InvalidInput);
    }
    let list = KvListRequest { collection: over.clone(), page: PageQuery::default() };
    Api::expect_error(api.post("/v1/kv/list", t, &list).await, InvalidInput);
    Api::expect_error(api.post("/v1/kv/list", t, &page(Some(over.clone()))).await, InvalidInput);

    // And in a rename, on either side; the message says which.
    let short = KvKeyRequest { collection: "c".into(), id: "i".into() };
    let long = KvKeyRequest { collection: "c".into(), id: over.clone() };
    for (at, side, renames) in [
        (0, "from", vec![KvRename { from: long.clone(), to: short.clone() }]),
        (
            1,
            "to",
            vec![
                KvRename { from: short.clone(), to: short.clone() },
                KvRename { from: short.clone(), to: long.clone() },
            ],
        ),
    ] {
        let message = Api::expect_error(api.post("/v1/kv/rename", t, &KvRenameRequest { renames }).await, InvalidInput);
        assert!(message.contains(&format!("renames[{at}].{side}")), "{message}");
    }
    let empty = KvKeyRequest { collection: "c".into(), id: String::new() };
    let renames = vec![KvRename { from: short.clone(), to: empty }];
    Api::expect_error(api.post("/v1/kv/rename", t, &KvRenameRequest { renames }).await, InvalidInput);
    assert_eq!(ada.get(&api, &collection, &second).await.as_deref(), Some(r#""2""#), "nothing changed");
}

#[tokio::test]
async fn a_rename_request_carries_at_most_max_renames() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let longest = |n: usize, c: char| format!("{n:04}{}", c.to_string().repeat(MAX_STORED_NAME_BYTES - 4));
    let rename_of = |n: usize| KvRename {
        from: KvKeyRequest { collection: longest(n, 'a'), id: longest(n, 'b') },
        to: KvKeyRequest { collection: longest(n, 'c'), id: longest(n, 'd') },
    };

    // MAX_RENAMES renames of the longest names fit the route's body limit (past the
    // limit of other JSON bodies): none is of a legacy key, so none is done.
    let most: Vec<KvRename> = (0..MAX_RENAMES).map(rename_of).collect();
    let body = serde_json::to_vec(&KvRenameRequest { renames: most.clone() }).unwrap();
    assert!(body.len() > coffer_accelerator::Config::DEFAULT_MAX_BODY_BYTES, "{}", body.len());
    let answer = rename(&api, &ada, most.clone()).await.unwrap();
    assert_eq!((answer.renamed, answer.dropped), (0, 0));

    // One more is refused, saying how many fit.
    let mut over = most;
    over.push(rename_of(MAX_RENAMES));
    let message = Api::expect_error(
        api.post("/v1/kv/rename", Some(ada.token()), &KvRenameRequest { renames: over }).await,
        InvalidInput,
    );
    assert!(message.contains(&MAX_RENAMES.to_string()), "{message}");

    // A body past the route's limit is refused before it is read.
    let huge = vec![b' '; coffer_accelerator::routes::kv::MAX_RENAME_BODY_BYTES + 1];
    let answer = api.post_raw("/v1/kv/rename", Some(ada.token()), "application/json", huge).await;
    Api::expect_error(answer, ErrorCode::TooLarge);
    Api::expect_error(
        api.post("/v1/kv/rename", None, &KvRenameRequest { renames: vec![] }).await,
        ErrorCode::Unauthorized,
    );
    assert!(api.healthy().await);
}

#[tokio::test]
async fn a_legacy_page_carries_values_up_to_its_byte_cap() {
    use before_sealed_names::sealed_value;
    let cap = MAX_LEGACY_PAGE_VALUE_BYTES;
    // A JSON string and its MAC: `len` bytes as stored.
    let plain = |len: usize| StoredValue::Plain { json: format!("\"{}\"", "x".repeat(len - 2 - 32)), mac: [2; 32] };
    let values = [
        sealed_value(300 * 1024), // the first: on its page whatever its size
        sealed_value(cap / 2),    // the next two: exactly the cap past the first
        plain(cap / 2),
        sealed_value(29),         // 29 bytes more: the next page
        sealed_value(600 * 1024), // each past the cap alone
        sealed_value(600 * 1024),
    ];
    assert_eq!(value_bytes(&values[1]) + value_bytes(&values[2]), cap as u64);
    let keys: Vec<OldKey> = values
        .into_iter()
        .enumerate()
        .map(|(n, value)| OldKey { collection: "big".into(), id: format!("k{}", n + 1), value, seq: n as u64 + 1 })
        .collect();
    let users =
        [OldUser { name: "eve".into(), root: RootSecret::from_bytes(random()), kv_seq: keys.len() as u64, keys }];
    let (server, accounts) = upgraded(&users, |_| {}).await;
    let api = server.api();
    let eve = &accounts[0];
    let expected = |range: std::ops::Range<usize>| users[0].keys[range].iter().map(listed).collect::<Vec<_>>();

    // Page by page, as the SDK moves them: k1 to k3 (k4 would pass the cap), k4 alone
    // (k5 would), k5 alone (past the cap itself, as is k6), then k6. Each value is
    // exactly as stored, and each page within what the SDK accepts of one.
    let mut pages = Vec::new();
    loop {
        let page = legacy_page(&api, eve).await;
        if page.is_empty() {
            break;
        }
        let body = serde_json::to_vec(&KvLegacyResponse { keys: page.clone() }).unwrap();
        assert!(body.len() <= coffer_core::proto::answer::MAX_LIST_ANSWER_BYTES, "{}", body.len());
        let renames: Vec<KvRename> = page
            .iter()
            .map(|k| to_sealed(eve, &KvKeyRequest { collection: k.collection.clone(), id: k.id.clone() }))
            .collect();
        let answer = rename(&api, eve, renames).await.unwrap();
        assert_eq!((answer.renamed, answer.dropped), (page.len() as u32, 0));
        pages.push(page);
    }
    assert_eq!(pages, [expected(0..3), expected(3..4), expected(4..5), expected(5..6)]);
    for key in &users[0].keys {
        assert_eq!(raw_get(&api, eve, &to_sealed(eve, &key.key()).to).await, Some(wire(&key.value)), "{}", key.id);
    }
}

#[tokio::test]
async fn keys_written_under_plain_names_since_the_upgrade_are_legacy_and_move() {
    let users = before_sealed_names::users();
    let (server, accounts) = upgraded(&users, |_| {}).await;
    let api = server.api();
    let bob = &accounts[1];
    let b1 = listed(&users[1].keys[0]);

    // Bob's old SDK, still at work after the upgrade, writes under plain names: the
    // key is legacy, listed with its value.
    let late = bob.set_request("bobs", "b2", r#"{"late":true}"#, false);
    let seq: KvWriteResponse = api.call("/v1/kv/set", Some(bob.token()), &late).await.unwrap();
    assert_eq!(seq.seq, 2);
    let b2 = KvLegacyKey { collection: "bobs".into(), id: "b2".into(), value: late.value.clone() };
    assert_eq!(legacy_page(&api, bob).await, [b1.clone(), b2.clone()]);

    // His new SDK's keys, under sealed names, are not; one name sealed of two is not
    // enough.
    let b3 = sealed(bob, "bobs", "b3");
    bob.set(&api, &b3.collection, &b3.id, "3", true).await;
    assert_eq!(legacy_page(&api, bob).await, [b1.clone(), b2.clone()]);
    let half = KvKeyRequest { collection: "bobs".into(), id: sealed(bob, "bobs", "b4").id };
    bob.set(&api, &half.collection, &half.id, "4", true).await;
    let listed_now = legacy(&api, bob).await;
    assert_eq!(listed_now.len(), 3);
    assert!(listed_now.contains(&half), "{listed_now:?}");

    // The late key moves like any legacy key: to its sealed names, with its value and
    // its change-log entry (same sequence number), and is no longer legacy.
    let moved = to_sealed(bob, &KvKeyRequest { collection: "bobs".into(), id: "b2".into() });
    let answer = rename(&api, bob, vec![moved.clone()]).await.unwrap();
    assert_eq!((answer.renamed, answer.dropped), (1, 0));
    assert_eq!(raw_get(&api, bob, &moved.to).await, Some(late.value.clone()));
    assert_eq!(raw_get(&api, bob, &moved.from).await, None);
    let left = legacy(&api, bob).await;
    assert!(!left.contains(&moved.from) && !left.contains(&moved.to) && left.len() == 2, "{left:?}");
    let (head, log) = replay(&server, bob, 4).await;
    assert_eq!(head, 4);
    assert_eq!(log[1], (2, moved.to.clone(), Some(late.value)));

    // So is a key written under plain names by an account made since.
    let dan = sign_up(&api, "dan", "pw").await;
    dan.set(&api, "todos", "t1", "1", true).await;
    assert_eq!(legacy(&api, &dan).await, [KvKeyRequest { collection: "todos".into(), id: "t1".into() }]);
}

#[tokio::test]
async fn a_rename_for_an_account_with_nothing_legacy_answers_zeros_and_changes_nothing() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let dan = sign_up(&api, "dan", "pw").await;
    let keys: Vec<KvKeyRequest> = (0..3).map(|n| sealed(&dan, "notes", &format!("n{n}"))).collect();
    let mut values = Vec::new();
    for key in &keys {
        dan.set(&api, &key.collection, &key.id, r#""kept""#, true).await;
        values.push(raw_get(&api, &dan, key).await.expect("stored"));
    }
    assert!(legacy(&api, &dan).await.is_empty());
    let used = used_bytes(&server, dan.user_id()).await;

    // Full batches, again and again, naming his own keys (to other sealed names, one
    // to its own) and absent ones: nothing is legacy, so nothing is done.
    let mut renames: Vec<KvRename> =
        keys.iter().map(|k| KvRename { from: k.clone(), to: sealed(&dan, "moved", &k.id) }).collect();
    renames.push(KvRename { from: keys[0].clone(), to: keys[0].clone() });
    renames.extend(
        (renames.len()..MAX_RENAMES)
            .map(|n| to_sealed(&dan, &KvKeyRequest { collection: "notes".into(), id: format!("absent{n}") })),
    );
    for _ in 0..3 {
        let answer = rename(&api, &dan, renames.clone()).await.unwrap();
        assert_eq!((answer.renamed, answer.dropped), (0, 0));
    }
    for (key, value) in keys.iter().zip(&values) {
        assert_eq!(raw_get(&api, &dan, key).await.as_ref(), Some(value));
    }
    assert_eq!(dan.list(&api, &keys[0].collection).await.len(), 3);
    assert!(dan.list(&api, &sealed(&dan, "moved", "x").collection).await.is_empty());
    assert_eq!(kv_seq(&api, &dan).await, 3);
    assert_eq!(used_bytes(&server, dan.user_id()).await, used);
    assert!(legacy(&api, &dan).await.is_empty());

    // The request is checked all the same: one rename too many, or a name too long.
    let mut over = renames.clone();
    over.push(renames[0].clone());
    let t = Some(dan.token());
    let message =
        Api::expect_error(api.post("/v1/kv/rename", t, &KvRenameRequest { renames: over }).await, InvalidInput);
    assert!(message.contains(&MAX_RENAMES.to_string()), "{message}");
    let long = KvKeyRequest { collection: "c".into(), id: "x".repeat(MAX_STORED_NAME_BYTES + 1) };
    let renames = vec![KvRename { from: long, to: keys[0].clone() }];
    Api::expect_error(api.post("/v1/kv/rename", t, &KvRenameRequest { renames }).await, InvalidInput);
}
