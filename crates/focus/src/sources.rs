//! The rules a participant's sources must follow (Jicofo's `ValidatingConferenceSourceMap`)
//! and the set arithmetic behind `source-add` / `source-remove`.

use std::collections::{HashMap, HashSet};

use convene_colibri::{GroupSemantics, SourceSet};

/// Most SSRCs, and most groups, one endpoint may signal (as Jicofo).
pub const MAX_SOURCES_PER_ENDPOINT: usize = 20;
pub const MAX_GROUPS_PER_ENDPOINT: usize = 20;
/// A simulcast group has at most this many layers (the Jitsi clients send three).
const MAX_SIMULCAST_LAYERS: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("SSRC 0 is not a valid SSRC")]
    ZeroSsrc,
    #[error("source name '{0}' does not start with the endpoint id")]
    ForeignName(String),
    #[error("SSRC {0} is signalled twice")]
    DuplicateSsrc(u32),
    #[error("SSRC {0} belongs to another endpoint")]
    ForeignSsrc(u32),
    #[error("msid '{0}' belongs to another endpoint")]
    ForeignMsid(String),
    #[error("more than {MAX_SOURCES_PER_ENDPOINT} sources")]
    TooManySources,
    #[error("more than {MAX_GROUPS_PER_ENDPOINT} source groups")]
    TooManyGroups,
    #[error("an FID group must have exactly 2 SSRCs")]
    BadFidGroup,
    #[error("a SIM group must have 1 to {MAX_SIMULCAST_LAYERS} SSRCs")]
    BadSimGroup,
    #[error("group member {0} is not a signalled source")]
    UnknownGroupMember(u32),
    #[error("grouped source {0} has no msid")]
    MissingMsid(u32),
    #[error("the sources of one group use different msids")]
    InconsistentMsid,
    #[error("msid '{0}' is used by two different streams")]
    SharedMsid(String),
    #[error("source {0} is not signalled, so it cannot be removed")]
    UnknownSource(u32),
    #[error("a group to remove is not signalled")]
    UnknownGroup,
}

/// Checks the complete source set of `endpoint` against its own rules and against the sets
/// of every other endpoint in the conference.
pub fn validate<'a>(
    endpoint: &str,
    set: &SourceSet,
    others: impl IntoIterator<Item = &'a SourceSet>,
) -> Result<(), SourceError> {
    if set.sources.len() > MAX_SOURCES_PER_ENDPOINT {
        return Err(SourceError::TooManySources);
    }
    if set.groups.len() > MAX_GROUPS_PER_ENDPOINT {
        return Err(SourceError::TooManyGroups);
    }
    let mut msid_of = HashMap::new();
    for source in &set.sources {
        if source.ssrc == 0 {
            return Err(SourceError::ZeroSsrc);
        }
        if msid_of
            .insert(source.ssrc, source.msid.as_deref())
            .is_some()
        {
            return Err(SourceError::DuplicateSsrc(source.ssrc));
        }
        // Source names are `<endpoint>-a0`, `<endpoint>-v1`...: receivers and the bridge
        // key tracks and constraints on them, so nobody may use another's.
        if let Some(name) = &source.name
            && !name
                .strip_prefix(endpoint)
                .is_some_and(|rest| rest.starts_with('-'))
        {
            return Err(SourceError::ForeignName(name.clone()));
        }
    }
    for other in others {
        if let Some(taken) = other.sources.iter().find(|s| msid_of.contains_key(&s.ssrc)) {
            return Err(SourceError::ForeignSsrc(taken.ssrc));
        }
        let foreign_msid = other
            .sources
            .iter()
            .filter_map(|s| s.msid.as_deref())
            .find(|m| set.sources.iter().any(|s| s.msid.as_deref() == Some(m)));
        if let Some(msid) = foreign_msid {
            return Err(SourceError::ForeignMsid(msid.to_owned()));
        }
    }

    // Union-find over SSRCs: a SIM group with its FID partners (or a lone FID pair, or a
    // lone source) is one stream, which has exactly one msid of its own.
    let mut stream_of: HashMap<u32, u32> = msid_of.keys().map(|&ssrc| (ssrc, ssrc)).collect();
    fn root(stream_of: &HashMap<u32, u32>, mut ssrc: u32) -> u32 {
        while stream_of[&ssrc] != ssrc {
            ssrc = stream_of[&ssrc];
        }
        ssrc
    }
    for group in &set.groups {
        let size_ok = match group.semantics {
            GroupSemantics::Fid => group.ssrcs.len() == 2,
            GroupSemantics::Sim => (1..=MAX_SIMULCAST_LAYERS).contains(&group.ssrcs.len()),
        };
        if !size_ok {
            return Err(match group.semantics {
                GroupSemantics::Fid => SourceError::BadFidGroup,
                GroupSemantics::Sim => SourceError::BadSimGroup,
            });
        }
        for &ssrc in &group.ssrcs {
            match msid_of.get(&ssrc) {
                None => return Err(SourceError::UnknownGroupMember(ssrc)),
                Some(None) => return Err(SourceError::MissingMsid(ssrc)),
                Some(Some(_)) => {}
            }
            let (a, b) = (root(&stream_of, group.ssrcs[0]), root(&stream_of, ssrc));
            stream_of.insert(b, a);
        }
    }
    let mut stream_msid: HashMap<u32, &str> = HashMap::new();
    for (&ssrc, msid) in &msid_of {
        let Some(msid) = msid else { continue };
        let stream = root(&stream_of, ssrc);
        if *stream_msid.entry(stream).or_insert(msid) != *msid {
            return Err(SourceError::InconsistentMsid);
        }
    }
    let mut seen = HashSet::new();
    for msid in stream_msid.values() {
        if !seen.insert(*msid) {
            return Err(SourceError::SharedMsid((*msid).to_owned()));
        }
    }
    Ok(())
}

/// `current` with `added` appended (validate the result).
pub fn add(current: &SourceSet, added: &SourceSet) -> SourceSet {
    let mut set = current.clone();
    set.sources.extend(added.sources.iter().cloned());
    for group in &added.groups {
        if !set.groups.contains(group) {
            set.groups.push(group.clone());
        }
    }
    set
}

/// `current` without `removed`; groups that lose a member go too, since clients remove a
/// stream's sources and groups together.
pub fn remove(current: &SourceSet, removed: &SourceSet) -> Result<SourceSet, SourceError> {
    let gone: HashSet<u32> = removed.sources.iter().map(|s| s.ssrc).collect();
    if let Some(&unknown) = gone
        .iter()
        .find(|&&ssrc| !current.sources.iter().any(|s| s.ssrc == ssrc))
    {
        return Err(SourceError::UnknownSource(unknown));
    }
    if removed.groups.iter().any(|g| !current.groups.contains(g)) {
        return Err(SourceError::UnknownGroup);
    }
    Ok(SourceSet {
        sources: current
            .sources
            .iter()
            .filter(|s| !gone.contains(&s.ssrc))
            .cloned()
            .collect(),
        groups: current
            .groups
            .iter()
            .filter(|g| !removed.groups.contains(g) && !g.ssrcs.iter().any(|s| gone.contains(s)))
            .cloned()
            .collect(),
    })
}

/// What to remove from and add to `old` to reach `new`: `(removed, added)`.
pub fn diff(old: &SourceSet, new: &SourceSet) -> (SourceSet, SourceSet) {
    let minus = |a: &SourceSet, b: &SourceSet| SourceSet {
        sources: a
            .sources
            .iter()
            .filter(|s| !b.sources.contains(s))
            .cloned()
            .collect(),
        groups: a
            .groups
            .iter()
            .filter(|g| !b.groups.contains(g))
            .cloned()
            .collect(),
    };
    (minus(old, new), minus(new, old))
}

#[cfg(test)]
mod tests {
    use convene_colibri::{MediaKind, Source, SsrcGroup};

    use super::*;

    fn source(ssrc: u32, msid: Option<&str>) -> Source {
        Source {
            ssrc,
            kind: MediaKind::Video,
            name: Some("ab-v0".into()),
            msid: msid.map(str::to_owned),
            video_type: None,
        }
    }

    fn group(semantics: GroupSemantics, ssrcs: &[u32]) -> SsrcGroup {
        SsrcGroup {
            semantics,
            kind: MediaKind::Video,
            ssrcs: ssrcs.to_vec(),
        }
    }

    fn simulcast(base: u32, msid: &str) -> SourceSet {
        let ssrcs = [
            base + 1,
            base + 2,
            base + 11,
            base + 12,
            base + 21,
            base + 22,
        ];
        SourceSet {
            sources: ssrcs.iter().map(|&s| source(s, Some(msid))).collect(),
            groups: vec![
                group(GroupSemantics::Sim, &[base + 1, base + 11, base + 21]),
                group(GroupSemantics::Fid, &[base + 1, base + 2]),
                group(GroupSemantics::Fid, &[base + 11, base + 12]),
                group(GroupSemantics::Fid, &[base + 21, base + 22]),
            ],
        }
    }

    #[test]
    fn a_simulcast_stream_with_rtx_is_valid() {
        assert_eq!(validate("ab", &simulcast(100, "m v"), []), Ok(()));
    }

    #[test]
    fn source_names_belong_to_the_endpoint() {
        assert_eq!(
            validate("abc", &simulcast(100, "m v"), []),
            Err(SourceError::ForeignName("ab-v0".into()))
        );
        assert_eq!(
            validate("a", &simulcast(100, "m v"), []),
            Err(SourceError::ForeignName("ab-v0".into()))
        );
    }

    #[test]
    fn rules_of_one_endpoint() {
        let mut set = simulcast(100, "m v");
        set.sources[3].msid = Some("other".into());
        assert_eq!(validate("ab", &set, []), Err(SourceError::InconsistentMsid));

        let mut set = simulcast(100, "m v");
        set.groups[1].ssrcs.push(999);
        assert_eq!(validate("ab", &set, []), Err(SourceError::BadFidGroup));

        let mut set = simulcast(100, "m v");
        set.groups.push(group(GroupSemantics::Fid, &[101, 777]));
        assert_eq!(
            validate("ab", &set, []),
            Err(SourceError::UnknownGroupMember(777))
        );

        let mut set = simulcast(100, "m v");
        set.sources[0].msid = None;
        assert_eq!(validate("ab", &set, []), Err(SourceError::MissingMsid(101)));

        let set = add(&simulcast(100, "m v"), &simulcast(200, "m v"));
        assert_eq!(
            validate("ab", &set, []),
            Err(SourceError::SharedMsid("m v".into()))
        );

        let set = add(&simulcast(100, "m v"), &simulcast(100, "x y"));
        assert_eq!(
            validate("ab", &set, []),
            Err(SourceError::DuplicateSsrc(101))
        );

        let set = SourceSet {
            sources: (1..=21).map(|s| source(s, None)).collect(),
            groups: vec![],
        };
        assert_eq!(validate("ab", &set, []), Err(SourceError::TooManySources));

        let set = SourceSet {
            sources: vec![source(0, None)],
            groups: vec![],
        };
        assert_eq!(validate("ab", &set, []), Err(SourceError::ZeroSsrc));
    }

    #[test]
    fn ssrcs_and_msids_are_unique_in_the_conference() {
        let other = simulcast(100, "theirs");
        assert_eq!(
            validate("ab", &simulcast(100, "mine"), [&other]),
            Err(SourceError::ForeignSsrc(101))
        );
        assert_eq!(
            validate("ab", &simulcast(200, "theirs"), [&other]),
            Err(SourceError::ForeignMsid("theirs".into()))
        );
        assert_eq!(validate("ab", &simulcast(200, "mine"), [&other]), Ok(()));
    }

    #[test]
    fn remove_drops_broken_groups_and_rejects_unknown_sources() {
        let set = simulcast(100, "m v");
        let removed = SourceSet {
            sources: vec![source(101, None)],
            groups: vec![],
        };
        let left = remove(&set, &removed).unwrap();
        assert_eq!(left.sources.len(), 5);
        assert_eq!(left.groups.len(), 2);

        let unknown = SourceSet {
            sources: vec![source(5, None)],
            groups: vec![],
        };
        assert_eq!(remove(&set, &unknown), Err(SourceError::UnknownSource(5)));
    }

    #[test]
    fn diff_finds_added_and_removed_parts() {
        let old = simulcast(100, "a");
        let new = add(&remove(&old, &old).unwrap(), &simulcast(200, "b"));
        let (removed, added) = diff(&old, &new);
        assert_eq!(removed, old);
        assert_eq!(added, simulcast(200, "b"));
        assert_eq!(
            diff(&old, &old),
            (SourceSet::default(), SourceSet::default())
        );
    }
}
