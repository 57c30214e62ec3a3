//! Settings of this role. The binary fills them from its TOML file and flags; every field
//! has an embedded default so that `convene` runs with no configuration at all.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Grant `owner` (moderator) to the longest-present participant whenever the room has
    /// no moderator, as Jicofo's "auto owner".
    pub auto_owner: bool,
    /// Most conferences at once; further conference requests for new rooms are refused
    /// (`resource-constraint`), since each one makes the focus join a room.
    pub max_conferences: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            auto_owner: true,
            max_conferences: 1000,
        }
    }
}
