//! A count of what each user has in flight, capped per user: the large request
//! bodies of [`crate::budget`]. Kept in [`crate::state::AppState`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Things in flight per user (budgeted request bodies), capped.
pub struct PerUser {
    /// Users with something in flight, and how many.
    counts: Mutex<HashMap<String, usize>>,
    /// How many one user may have.
    cap: usize,
}

/// One thing in flight; counted until dropped.
pub struct Slot {
    /// Where it is counted.
    bodies: Arc<PerUser>,
    /// Whose it is.
    user_id: String,
}

impl PerUser {
    /// Allows `cap` in flight per user.
    pub fn new(cap: usize) -> Self {
        PerUser { counts: Mutex::new(HashMap::new()), cap: cap.max(1) }
    }

    /// How many one user may have.
    pub fn cap(&self) -> usize {
        self.cap
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for one more of `user_id`'s, unless they are at the cap.
    pub fn enter(self: &Arc<Self>, user_id: &str) -> Option<Slot> {
        let mut counts = self.counts();
        let n = counts.entry(user_id.to_owned()).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Slot { bodies: Arc::clone(self), user_id: user_id.to_owned() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.bodies.counts();
        if let Some(n) = counts.get_mut(&self.user_id) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_cap_slots() {
        let bodies = Arc::new(PerUser::new(2));
        let a = bodies.enter("ada").unwrap();
        let _b = bodies.enter("ada").unwrap();
        assert!(bodies.enter("ada").is_none());
        assert!(bodies.enter("bob").is_some());
        drop(a);
        assert!(bodies.enter("ada").is_some());
    }
}
