//! What the SDK reads from the wire before trusting it: a shard batch fed to
//! `ShardBatchDecoder` in arbitrary pieces, and list answers read element by element
//! (`Listed`). Never panics; a batch decoder never accepts more than `max_len` bytes
//! nor a shard longer than asked for, and how the bytes are cut never changes the
//! outcome; a list that parses whole also parses with every element `Ok`.
#![no_main]

use coffer_core::proto::answer::Listed;
use coffer_core::proto::storage::{ShardBatchDecoder, SpaceInfo, SpaceListResponse, decode_shard_batch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[count, len, cut], rest)) = data.split_first_chunk::<3>() else { return };
    let (count, shard_len, cut) = (usize::from(count % 9), usize::from(len), usize::from(cut).max(1));
    let whole = decode_shard_batch(rest, count, shard_len);
    let mut decoder = ShardBatchDecoder::new(count, shard_len);
    let mut taken = 0;
    let mut refused = None;
    for piece in rest.chunks(cut) {
        if let Err(e) = decoder.push(piece) {
            refused = Some(e);
            break;
        }
        taken += piece.len();
        assert!(taken <= decoder.max_len());
    }
    let pieces = match refused {
        Some(e) => Err(e),
        None => decoder.finish(),
    };
    assert_eq!(whole, pieces, "cutting the answer changed the outcome");
    if let Ok(shards) = whole {
        assert_eq!(shards.len(), count);
        assert!(shards.iter().flatten().all(|s| s.len() <= shard_len));
    }

    if let Ok(strict) = serde_json::from_slice::<SpaceListResponse>(data) {
        let lenient: SpaceListResponse<Listed<SpaceInfo>> =
            serde_json::from_slice(data).expect("a list that parses whole parses element by element");
        let good = lenient.spaces.into_iter().map(|l| match l {
            Listed::Ok(info) => info,
            Listed::Malformed { reason, .. } => panic!("a valid element was refused: {reason}"),
        });
        assert_eq!(good.collect::<Vec<_>>(), strict.spaces);
    }
});
