//! Jitsi's JSON-encoded sources: `<json-message xmlns="http://jitsi.org/jitmeet">` whose text
//! is `{"sources": {owner: [videoSources, videoGroups, audioSources, audioGroups]}}`, with
//! sources `{"s": ssrc, "n": name, "m": msid, "v": "d"}` (`v` only for desktop) and groups
//! `["f" | "s", ssrc, ...]` (`JCF: .../source/EndpointSourceSet.kt`, `LJM:
//! JingleHelperFunctions.ts`). Trailing empty lists may be left out.

use convene_colibri::{GroupSemantics, MediaKind, Source, SourceSet, SsrcGroup, VideoType};
use serde_json::{Value, json};

use crate::xml::ParseError;

/// Longest `json-message` text accepted.
pub const MAX_JSON_LEN: usize = 64 * 1024;
const MAX_OWNERS: usize = 64;
const MAX_ENTRIES: usize = 64;
const MAX_GROUP_MEMBERS: usize = 8;

const INVALID: ParseError = ParseError::InvalidJsonSources;

/// The sources per owner, in the order of the text.
pub fn parse(text: &str) -> Result<Vec<(String, SourceSet)>, ParseError> {
    if text.len() > MAX_JSON_LEN {
        return Err(ParseError::TooLong {
            element: "json-message",
        });
    }
    let root: Value = serde_json::from_str(text).map_err(|_| INVALID)?;
    let Some(owners) = root.get("sources") else {
        // Other JSON messages (not about sources) are none of our business.
        return Ok(Vec::new());
    };
    let owners = owners.as_object().ok_or(INVALID)?;
    if owners.len() > MAX_OWNERS {
        return Err(ParseError::TooMany {
            element: "json-message owner",
            limit: MAX_OWNERS,
        });
    }
    owners
        .iter()
        .map(|(owner, lists)| {
            let lists = lists.as_array().ok_or(INVALID)?;
            if lists.len() > 4 {
                return Err(INVALID);
            }
            let mut set = SourceSet::default();
            for (index, list) in lists.iter().enumerate() {
                let kind = if index < 2 {
                    MediaKind::Video
                } else {
                    MediaKind::Audio
                };
                let entries = list.as_array().ok_or(INVALID)?;
                if entries.len() > MAX_ENTRIES {
                    return Err(ParseError::TooMany {
                        element: "json-message entry",
                        limit: MAX_ENTRIES,
                    });
                }
                for entry in entries {
                    if index % 2 == 0 {
                        set.sources.push(parse_source(entry, kind)?);
                    } else {
                        set.groups.push(parse_group(entry, kind)?);
                    }
                }
            }
            Ok((owner.clone(), set))
        })
        .collect()
}

fn ssrc(value: &Value) -> Result<u32, ParseError> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(INVALID)
}

fn short_string(value: Option<&Value>) -> Result<Option<String>, ParseError> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) if s.len() <= crate::xml::MAX_VALUE_LEN => Ok(Some(s.clone())),
        Some(_) => Err(INVALID),
    }
}

fn parse_source(entry: &Value, kind: MediaKind) -> Result<Source, ParseError> {
    let object = entry.as_object().ok_or(INVALID)?;
    Ok(Source {
        ssrc: ssrc(object.get("s").ok_or(INVALID)?)?,
        kind,
        name: short_string(object.get("n"))?,
        msid: short_string(object.get("m"))?,
        video_type: match object.get("v").and_then(Value::as_str) {
            Some("d") => Some(VideoType::Desktop),
            _ => None,
        },
    })
}

fn parse_group(entry: &Value, kind: MediaKind) -> Result<SsrcGroup, ParseError> {
    let items = entry.as_array().ok_or(INVALID)?;
    let (semantics, members) = items.split_first().ok_or(INVALID)?;
    let semantics = match semantics.as_str() {
        Some("f") => GroupSemantics::Fid,
        Some("s") => GroupSemantics::Sim,
        _ => return Err(INVALID),
    };
    if members.len() > MAX_GROUP_MEMBERS {
        return Err(INVALID);
    }
    Ok(SsrcGroup {
        semantics,
        kind,
        ssrcs: members.iter().map(ssrc).collect::<Result<_, _>>()?,
    })
}

/// The text of a `json-message` carrying `sources`.
pub fn to_json(sources: &[(String, SourceSet)]) -> String {
    let owners: serde_json::Map<String, Value> = sources
        .iter()
        .map(|(owner, set)| {
            let lists = [MediaKind::Video, MediaKind::Audio].map(|kind| {
                let sources: Vec<Value> = set
                    .sources
                    .iter()
                    .filter(|s| s.kind == kind)
                    .map(|s| {
                        let mut entry = json!({ "s": s.ssrc });
                        if let Some(name) = &s.name {
                            entry["n"] = json!(name);
                        }
                        if let Some(msid) = &s.msid {
                            entry["m"] = json!(msid);
                        }
                        if s.video_type == Some(VideoType::Desktop) {
                            entry["v"] = json!("d");
                        }
                        entry
                    })
                    .collect();
                let groups: Vec<Value> = set
                    .groups
                    .iter()
                    .filter(|g| g.kind == kind)
                    .map(|g| {
                        let semantics = match g.semantics {
                            GroupSemantics::Fid => "f",
                            GroupSemantics::Sim => "s",
                        };
                        let mut items = vec![json!(semantics)];
                        items.extend(g.ssrcs.iter().map(|s| json!(s)));
                        Value::Array(items)
                    })
                    .collect();
                [Value::Array(sources), Value::Array(groups)]
            });
            let [[video, video_groups], [audio, audio_groups]] = lists;
            (
                owner.clone(),
                json!([video, video_groups, audio, audio_groups]),
            )
        })
        .collect();
    json!({ "sources": owners }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"sources":{
      "ab12cd34":[
         [{"s":2222,"n":"ab12cd34-v0","m":"ab12cd34-video-0-1 55e1-1"},{"s":2223,"n":"ab12cd34-v0","m":"ab12cd34-video-0-1 55e1-1"}],
         [["f",2222,2223]],
         [{"s":1111,"n":"ab12cd34-a0","m":"ab12cd34-audio-0-1 7c9d-1"}]
      ],
      "jvb":[[{"s":3758540092,"m":"mixedmslabel mixedlabelvideo0"}],[],[{"s":4039389863,"m":"mixedmslabel mixedlabelaudio0"}]]
    }}"#;

    #[test]
    fn parses_the_jicofo_shape_and_round_trips() {
        let parsed = parse(SAMPLE).unwrap();
        assert_eq!(parsed.len(), 2);
        let (owner, set) = &parsed[0];
        assert_eq!(owner, "ab12cd34");
        assert_eq!(set.sources.len(), 3);
        assert_eq!(set.sources[2].kind, MediaKind::Audio);
        assert_eq!(set.sources[0].name.as_deref(), Some("ab12cd34-v0"));
        assert_eq!(set.groups[0].ssrcs, vec![2222, 2223]);
        assert_eq!(set.groups[0].semantics, GroupSemantics::Fid);
        assert_eq!(parsed[1].1.sources[0].ssrc, 3758540092);
        assert_eq!(parse(&to_json(&parsed)).unwrap(), parsed);
    }

    #[test]
    fn rejects_malformed_and_oversized_text() {
        for bad in [
            "not json",
            r#"{"sources":[]}"#,
            r#"{"sources":{"a":[[{"s":-1}]]}}"#,
            r#"{"sources":{"a":[[{"s":99999999999}]]}}"#,
            r#"{"sources":{"a":[[],[["x",1,2]]]}}"#,
            r#"{"sources":{"a":[[],[],[],[],[]]}}"#,
        ] {
            assert_eq!(parse(bad), Err(INVALID), "{bad}");
        }
        let big = format!(
            r#"{{"sources":{{"a":[[{}]]}}}}"#,
            vec![r#"{"s":1}"#; 65].join(",")
        );
        assert!(matches!(parse(&big), Err(ParseError::TooMany { .. })));
        assert!(matches!(
            parse(&" ".repeat(MAX_JSON_LEN + 1)),
            Err(ParseError::TooLong { .. })
        ));
        assert_eq!(parse(r#"{"type":"other"}"#), Ok(Vec::new()));
    }
}
