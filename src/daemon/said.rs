//! What the daemon last said of a recurring state, so that a loop logs a
//! state once when it begins (a source failing, an invalid head, the
//! scheduler's store unreachable) rather than on every tick, and says when
//! it ends.

use std::sync::{Arc, Mutex};

use crate::executor::lock;

/// The last state said, shared by the clones of a loop's context.
#[derive(Debug, Clone, Default)]
pub struct Said(Arc<Mutex<Option<String>>>);

impl Said {
    /// Records `state`; whether it differs from the last one said.
    pub fn changed(&self, state: impl Into<String>) -> bool {
        let state = state.into();
        let mut last = lock(&self.0);
        if last.as_deref() == Some(state.as_str()) {
            return false;
        }
        *last = Some(state);
        true
    }

    /// Forgets the last state: the next one is said whatever it is.
    /// Returns whether there was one.
    pub fn clear(&self) -> bool {
        lock(&self.0).take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_said_once_until_it_changes() {
        let said = Said::default();
        assert!(said.changed("refused abc"));
        assert!(!said.changed("refused abc"));
        assert!(!said.clone().changed("refused abc"), "clones share it");
        assert!(said.changed("refused def"));
        assert!(said.clear());
        assert!(!said.clear());
        assert!(said.changed("refused def"));
    }
}
