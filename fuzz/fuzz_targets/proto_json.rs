//! Every wire type parsed from arbitrary bytes with serde_json: never panics, and
//! whatever parses survives a round trip unchanged.
#![no_main]

use coffer_core::proto::storage::*;
use coffer_core::proto::*;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(parsed) = serde_json::from_slice::<T>(data) {
        let text = serde_json::to_string(&parsed).expect("a parsed value serializes");
        let again: T = serde_json::from_str(&text).expect("what we write, we read");
        assert_eq!(again, parsed);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<ClientFrame>(data);
    round_trip::<ServerFrame>(data);
    round_trip::<ChangeEvent>(data);
    round_trip::<ErrorBody>(data);
    round_trip::<SaltRequest>(data);
    round_trip::<SaltResponse>(data);
    round_trip::<SignUpRequest>(data);
    round_trip::<ChallengeRequest>(data);
    round_trip::<ChallengeResponse>(data);
    round_trip::<LoginRequest>(data);
    round_trip::<SessionResponse>(data);
    round_trip::<SessionInfo>(data);
    round_trip::<ChangePasswordRequest>(data);
    round_trip::<PublishKeyRequest>(data);
    round_trip::<KvValue>(data);
    round_trip::<KvSetRequest>(data);
    round_trip::<KvKeyRequest>(data);
    round_trip::<KvListRequest>(data);
    round_trip::<KvWriteResponse>(data);
    round_trip::<KvGetResponse>(data);
    round_trip::<KvDeleteResponse>(data);
    round_trip::<KvListResponse>(data);
    round_trip::<KvLegacyResponse>(data);
    round_trip::<KvRenameRequest>(data);
    round_trip::<KvRenameResponse>(data);
    // Files and spaces (proto::storage).
    round_trip::<Role>(data);
    round_trip::<ShardsRequest>(data);
    round_trip::<ShardsMissingResponse>(data);
    round_trip::<CreateSpaceRequest>(data);
    round_trip::<SpaceInfo>(data);
    round_trip::<SpaceListResponse>(data);
    round_trip::<CreateInviteRequest>(data);
    round_trip::<InviteInfo>(data);
    round_trip::<JoinSpaceRequest>(data);
    round_trip::<Member>(data);
    round_trip::<MembersResponse>(data);
    round_trip::<RemoveMemberRequest>(data);
    round_trip::<UsageResponse>(data);
    round_trip::<CommitFileRequest>(data);
    round_trip::<FileEntry>(data);
    round_trip::<FileListResponse>(data);
    round_trip::<DeleteFileResponse>(data);
    round_trip::<RosterEntryRequest>(data);
    round_trip::<SpaceKeysResponse>(data);
    round_trip::<RotateRequest>(data);
});
