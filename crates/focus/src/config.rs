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
    /// Only users of the main domain (accounts, token users) open conferences; guests of
    /// another domain are refused `not-authorized` until one is open (Jicofo's
    /// authentication). Set by the binary from `[auth]`, not a key of `[focus]`.
    #[serde(skip)]
    pub authentication: bool,
    /// The sign-in is external (tokens): what the conference answer tells the clients.
    #[serde(skip)]
    pub external_auth: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            auto_owner: true,
            max_conferences: 1000,
            authentication: false,
            external_auth: false,
        }
    }
}
