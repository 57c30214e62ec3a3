//! Signalled sources (Jingle SSRCs and SSRC groups) turned into the tracks and layers
//! forwarding works with.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use super::endpoint::{Layer, Track};
use crate::api::{GroupSemantics, Source, SourceSet};

/// The most SSRCs one endpoint may signal (Jicofo allows 20 sources and 20 groups).
const MAX_SSRCS_PER_ENDPOINT: usize = 64;

/// Splits a signalled source set into tracks; an error if it is inconsistent.
pub(super) fn tracks_of(set: &SourceSet) -> Result<Vec<Track>, String> {
    let sources: HashMap<u32, &Source> = set.sources.iter().map(|s| (s.ssrc, s)).collect();
    if sources.len() != set.sources.len() {
        return Err("duplicate SSRC".into());
    }
    if set.sources.iter().any(|s| s.ssrc == 0) {
        return Err("SSRC 0".into());
    }
    if set.sources.len() > MAX_SSRCS_PER_ENDPOINT || set.groups.len() > MAX_SSRCS_PER_ENDPOINT {
        return Err("too many sources".into());
    }
    let mut rtx_of = HashMap::new();
    for g in &set.groups {
        if g.ssrcs.iter().any(|s| !sources.contains_key(s)) {
            return Err("group refers to an unsignalled SSRC".into());
        }
        match g.semantics {
            GroupSemantics::Fid if g.ssrcs.len() != 2 => {
                return Err("FID group without exactly two SSRCs".into());
            }
            GroupSemantics::Fid => {
                rtx_of.insert(g.ssrcs[0], g.ssrcs[1]);
            }
            GroupSemantics::Sim if g.ssrcs.is_empty() || g.ssrcs.len() > 4 => {
                return Err("SIM group with no or too many layers".into());
            }
            GroupSemantics::Sim => {}
        }
    }
    let rtx_ssrcs: HashSet<u32> = rtx_of.values().copied().collect();
    let mut layouts: Vec<Vec<u32>> = Vec::new();
    let mut in_track = HashSet::new();
    for g in set
        .groups
        .iter()
        .filter(|g| g.semantics == GroupSemantics::Sim)
    {
        if g.ssrcs
            .iter()
            .any(|s| in_track.contains(s) || rtx_ssrcs.contains(s))
        {
            return Err("SSRC in two simulcast groups".into());
        }
        in_track.extend(g.ssrcs.iter().copied());
        layouts.push(g.ssrcs.clone());
    }
    for s in &set.sources {
        if !in_track.contains(&s.ssrc) && !rtx_ssrcs.contains(&s.ssrc) {
            layouts.push(vec![s.ssrc]);
        }
    }
    let tracks = layouts
        .into_iter()
        .map(|layers| {
            let source = sources[&layers[0]];
            Track {
                primary: layers[0],
                primary_rtx: rtx_of.get(&layers[0]).copied(),
                kind: source.kind,
                name: source
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("ssrc-{}", layers[0])),
                layers: layers
                    .iter()
                    .map(|&s| Layer::new(s, rtx_of.get(&s).copied()))
                    .collect(),
                muted: false,
            }
        })
        .collect();
    Ok(tracks)
}

pub(super) fn all_ssrcs(set: &SourceSet) -> impl Iterator<Item = u32> + '_ {
    set.sources.iter().map(|s| s.ssrc)
}
