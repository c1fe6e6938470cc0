//! What the tabs of one account on one origin say to each other (SPEC.md D.4): the
//! names of their channel and Web Locks, and the messages on that channel. The SDK
//! moves them (BroadcastChannel, `navigator.locks`); nothing here is secret — a
//! frame carries what the accelerator sent, kv values still sealed.

use serde::{Deserialize, Serialize};

/// The BroadcastChannel of an account's tabs: this, then its device owner tag (D.1).
pub const TABS_CHANNEL_PREFIX: &str = "coffer/v1/tabs/";
/// The Web Lock whose holder leads the account's change feed: this, then the owner tag.
pub const FEED_LOCK_PREFIX: &str = "coffer/v1/feed/";
/// The Web Lock a tab writing or resuming an upload holds: this, then the upload id.
pub const UPLOAD_LOCK_PREFIX: &str = "coffer/v1/upload/";

/// How long a leader gathers `hello`s before reconnecting to replay for them.
pub const REWIND_GATHER_MS: u32 = 50;
/// How long a client holds frames for an unanswered `hello`.
pub const HELLO_WAIT_MS: u32 = 5_000;

/// The BLAKE3 key-derivation context of [`session_tag`].
pub const SESSION_TAG_CONTEXT: &str = "coffer/v1 tab session tag";

/// Names a session token on the channel without giving it away: 16 bytes of BLAKE3
/// in derive-key mode, as lowercase hex.
pub fn session_tag(token: &str) -> String {
    blake3::derive_key(SESSION_TAG_CONTEXT, token.as_bytes())[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The channel of the account whose owner tag is `owner`.
pub fn channel_name(owner: &str) -> String {
    format!("{TABS_CHANNEL_PREFIX}{owner}")
}

/// The feed lock of the account whose owner tag is `owner`.
pub fn feed_lock(owner: &str) -> String {
    format!("{FEED_LOCK_PREFIX}{owner}")
}

/// The lock of upload `id`.
pub fn upload_lock(id: &str) -> String {
    format!("{UPLOAD_LOCK_PREFIX}{id}")
}

/// A message on an account's channel: one JSON object, tagged by `type`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum TabMessage {
    /// A `change` or `resync` frame of the feed (§7.3), as the leader received it.
    Frame {
        /// The frame's text.
        text: String,
    },
    /// A tab's position in the feed: a leader that is past it replays from there,
    /// then answers `caughtUp`; the tab holds the frames it gets until then.
    Hello {
        /// The last sequence number that tab delivered.
        since: u64,
        /// Chosen by that tab, at random, to know the answer by.
        id: u32,
    },
    /// The leader has passed on every change after that `hello`'s `since`.
    CaughtUp {
        /// The `hello`'s id.
        id: u32,
    },
    /// A tab took the feed over: the others say where they are.
    Leader,
    /// The account signed out in some tab: every tab signs out, and revokes its own
    /// session unless it is this one.
    SignedOut {
        /// [`session_tag`] of the session that was revoked.
        session: String,
    },
}

impl TabMessage {
    /// The message as it goes on the channel.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("tab messages serialize")
    }

    /// A message from the channel; `None` for one this version does not know (a
    /// newer SDK's, in another tab), which is ignored.
    pub fn from_text(text: &str) -> Option<TabMessage> {
        serde_json::from_str(text).ok()
    }
}

/// A client that does not lead: it holds the frames it gets while its `hello` is
/// unanswered, so a replay of older changes is not skipped as already seen (D.4).
#[derive(Debug, Default)]
pub struct Follower {
    hello: Option<u32>,
    held: Vec<String>,
}

impl Follower {
    /// The `hello` to post from position `since`; `id` is fresh and random. Frames
    /// are held from now until it is answered.
    pub fn hello(&mut self, since: u64, id: u32) -> TabMessage {
        self.hello = Some(id);
        TabMessage::Hello { since, id }
    }

    /// A frame from the leader: `Some` to apply it now, `None` if it is held.
    pub fn frame(&mut self, text: String) -> Option<String> {
        if self.hello.is_none() {
            return Some(text);
        }
        self.held.push(text);
        None
    }

    /// An answer to some client's `hello`: if to this one's, what it held, in
    /// sequence order, to apply.
    pub fn caught_up(&mut self, id: u32) -> Option<Vec<String>> {
        if self.hello != Some(id) {
            return None;
        }
        self.hello = None;
        let mut held = std::mem::take(&mut self.held);
        held.sort_by_key(|text| frame_seq(text));
        Some(held)
    }

    /// `hello` `id` went unanswered for [`HELLO_WAIT_MS`]: what was held, as it came.
    pub fn gave_up(&mut self, id: u32) -> Option<Vec<String>> {
        if self.hello != Some(id) {
            return None;
        }
        self.hello = None;
        Some(std::mem::take(&mut self.held))
    }

    /// This client now leads: it connects from its own position, so what it held
    /// comes again from the accelerator and is dropped here.
    pub fn lead(&mut self) {
        self.hello = None;
        self.held.clear();
    }
}

/// Where a frame sorts among held ones: a change's or resync's `seq`; anything
/// else last.
fn frame_seq(text: &str) -> u64 {
    match serde_json::from_str(text) {
        Ok(crate::proto::ServerFrame::Change(change)) => change.seq,
        Ok(crate::proto::ServerFrame::Resync { seq }) => seq,
        _ => u64::MAX,
    }
}

/// A `hello` the leader has not answered yet.
#[derive(Debug)]
struct Behind {
    id: u32,
    since: u64,
    /// Whether the current connection started from at or below `since` after this
    /// `hello` came (so its replay covers it).
    covered: bool,
}

/// The leader's account of the clients behind it (D.4).
#[derive(Debug, Default)]
pub struct Leader {
    behind: Vec<Behind>,
    /// The `since` the current connection started from.
    connected_since: Option<u64>,
    /// That connection's head (`ready`), while its replay is not done.
    replay_head: Option<u64>,
}

impl Leader {
    /// A client's `hello`, with the leader at `position`: the answer to post now, or
    /// `None` when the leader must reconnect to replay for it.
    pub fn hello(&mut self, since: u64, id: u32, position: u64) -> Option<TabMessage> {
        if since >= position {
            return Some(TabMessage::CaughtUp { id });
        }
        self.behind.push(Behind { id, since, covered: false });
        None
    }

    /// Where the next connection starts, the leader being at `position`: there, or
    /// at the earliest client behind it.
    pub fn connect_from(&mut self, position: u64) -> u64 {
        let since = self.behind.iter().map(|b| b.since).fold(position, u64::min);
        for behind in &mut self.behind {
            behind.covered = true;
        }
        self.connected_since = Some(since);
        self.replay_head = None;
        since
    }

    /// The connection is `ready` with the head at `head`: the answers due now.
    pub fn ready(&mut self, head: u64) -> Vec<TabMessage> {
        match self.connected_since {
            Some(since) if head > since => {
                self.replay_head = Some(head);
                Vec::new()
            }
            _ => self.replayed(),
        }
    }

    /// A change `seq` arrived and was passed on: the answers due now.
    pub fn change(&mut self, seq: u64) -> Vec<TabMessage> {
        match self.replay_head {
            Some(head) if seq >= head => self.replayed(),
            _ => Vec::new(),
        }
    }

    /// A `resync` arrived and was passed on (the accelerator continues from its
    /// head): the answers due now.
    pub fn resync(&mut self) -> Vec<TabMessage> {
        self.replayed()
    }

    /// Whether some client still waits for a replay this connection does not cover.
    pub fn must_reconnect(&self) -> bool {
        self.behind.iter().any(|b| !b.covered)
    }

    fn replayed(&mut self) -> Vec<TabMessage> {
        self.replay_head = None;
        let (done, waiting): (Vec<Behind>, Vec<Behind>) =
            std::mem::take(&mut self.behind).into_iter().partition(|b| b.covered);
        self.behind = waiting;
        done.into_iter().map(|b| TabMessage::CaughtUp { id: b.id }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: u64) -> String {
        format!(r#"{{"type":"change","seq":{seq},"collection":"c","id":"k{seq}","op":"delete","value":null}}"#)
    }

    fn seqs(frames: &[String]) -> Vec<u64> {
        frames.iter().map(|f| frame_seq(f)).collect()
    }

    #[test]
    fn a_follower_behind_applies_the_replay_before_what_came_live() {
        let mut follower = Follower::default();
        assert_eq!(follower.frame(change(1)), Some(change(1)), "nothing is held without a hello");
        let TabMessage::Hello { since: 1, id } = follower.hello(1, 7) else { panic!() };
        // Live frames of the leader's old connection, then its replay from 1.
        for seq in [4, 5, 2, 3, 4, 5, 6] {
            assert_eq!(follower.frame(change(seq)), None, "held until answered");
        }
        assert_eq!(follower.caught_up(id + 1), None, "another client's answer");
        let held = follower.caught_up(id).unwrap();
        assert_eq!(seqs(&held), [2, 3, 4, 4, 5, 5, 6], "in sequence order (duplicates are skipped as applied)");
        assert_eq!(follower.frame(change(7)), Some(change(7)));
    }

    #[test]
    fn a_follower_that_leads_drops_what_it_held_and_one_that_waits_too_long_applies_it() {
        let mut follower = Follower::default();
        follower.hello(3, 1);
        follower.frame(change(5));
        follower.lead();
        assert_eq!(follower.caught_up(1), None);
        assert_eq!(follower.frame(change(6)), Some(change(6)));
        follower.hello(6, 2);
        follower.frame(change(8));
        follower.frame(change(7));
        assert_eq!(follower.gave_up(1), None, "an old hello's timer");
        assert_eq!(seqs(&follower.gave_up(2).unwrap()), [8, 7]);
    }

    #[test]
    fn a_leader_answers_at_once_a_client_not_behind_it() {
        let mut leader = Leader::default();
        assert_eq!(leader.connect_from(10), 10);
        assert_eq!(leader.hello(10, 1, 10), Some(TabMessage::CaughtUp { id: 1 }));
        assert_eq!(leader.hello(12, 2, 10), Some(TabMessage::CaughtUp { id: 2 }));
        assert!(!leader.must_reconnect());
    }

    #[test]
    fn a_leader_replays_from_the_earliest_and_answers_when_the_replay_passes_the_head() {
        let mut leader = Leader::default();
        leader.connect_from(10);
        assert_eq!(leader.hello(4, 1, 10), None);
        assert_eq!(leader.hello(6, 2, 10), None);
        assert!(leader.must_reconnect());
        assert_eq!(leader.connect_from(10), 4, "from the earliest behind");
        assert!(!leader.must_reconnect());
        assert_eq!(leader.ready(12), vec![]);
        // A third asks mid-replay: this connection does not cover it.
        assert_eq!(leader.hello(5, 3, 10), None);
        assert!(leader.must_reconnect());
        assert_eq!(leader.change(9), vec![]);
        assert_eq!(leader.change(13), vec![TabMessage::CaughtUp { id: 1 }, TabMessage::CaughtUp { id: 2 }]);
        assert_eq!(leader.connect_from(13), 5);
        assert_eq!(leader.ready(13), vec![]);
        assert_eq!(leader.change(13), vec![TabMessage::CaughtUp { id: 3 }], "a change at the head ends it");
    }

    #[test]
    fn a_replay_with_nothing_past_its_start_ends_at_ready_and_a_resync_ends_it_too() {
        let mut leader = Leader::default();
        leader.connect_from(10);
        leader.hello(10, 1, 11);
        leader.connect_from(11);
        assert_eq!(leader.ready(10), vec![TabMessage::CaughtUp { id: 1 }], "head at or below since: nothing to replay");
        leader.hello(2, 2, 11);
        leader.connect_from(11);
        assert_eq!(leader.ready(50), vec![]);
        assert_eq!(leader.resync(), vec![TabMessage::CaughtUp { id: 2 }]);
    }
}
