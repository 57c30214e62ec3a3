//! Settings of this role. The binary fills them from its TOML file and flags; every field
//! has an embedded default so that `convene` runs with no configuration at all.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Send camera video as three simulcast layers (`config.disableSimulcast` when false).
    pub simulcast: bool,
    /// Show the pre-join screen (name, camera and microphone preview) before joining.
    pub prejoin: bool,
    /// Camera capture height asked of the browser (`config.resolution`).
    pub resolution: u32,
    /// Name shown in the page title and on the home page.
    pub app_name: String,
    /// A stock Jitsi Meet build (such as Debian's `/usr/share/jitsi-meet`) to serve instead
    /// of Convene's own client; its `config.js` is generated from the settings above.
    pub jitsi_meet_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            simulcast: true,
            prejoin: true,
            resolution: 720,
            app_name: "Convene".into(),
            jitsi_meet_dir: None,
        }
    }
}
