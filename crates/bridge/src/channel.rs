//! Bridge-channel (colibri-ws) messages: JSON objects tagged by `colibriClass`.
//! Documented in `docs/bridge-channel.md`.

use serde_json::{Map, Value, json};

use crate::allocator::Constraints;

/// Longest message accepted from a client, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A message from a client, parsed as far as the bridge acts on it.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// Fields absent from the message keep their previous values.
    ReceiverVideoConstraints(ConstraintsUpdate),
    SourceVideoType {
        source_name: String,
        video_type: String,
    },
    /// Relayed to `to`, or to everyone else when `to` is empty.
    EndpointMessage {
        to: String,
        message: Map<String, Value>,
    },
    /// Relayed to everyone else.
    EndpointStats {
        message: Map<String, Value>,
    },
    LastNChanged {
        last_n: i32,
    },
    /// Well-formed but not acted upon (e.g. `ClientHello`).
    Ignored(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConstraintsUpdate {
    pub last_n: Option<i32>,
    pub on_stage: Option<Vec<String>>,
    pub selected: Option<Vec<String>>,
    pub default_max_height: Option<i32>,
    pub max_height: Option<Vec<(String, i32)>>,
}

impl ConstraintsUpdate {
    pub fn apply(self, c: &mut Constraints) {
        if let Some(v) = self.last_n {
            c.last_n = v;
        }
        if let Some(v) = self.on_stage {
            c.on_stage = v;
        }
        if let Some(v) = self.selected {
            c.selected = v;
        }
        if let Some(v) = self.default_max_height {
            c.default_max_height = v;
        }
        if let Some(v) = self.max_height {
            c.max_height = v.into_iter().collect();
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("message too large")]
    TooLarge,
    #[error("not a JSON object with a colibriClass")]
    Malformed,
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn int(v: &Value) -> Option<i32> {
    v.as_i64()
        .map(|n| n.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
}

pub fn parse(text: &str) -> Result<ClientMessage, ChannelError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ChannelError::TooLarge);
    }
    let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(text) else {
        return Err(ChannelError::Malformed);
    };
    let Some(Value::String(class)) = m.remove("colibriClass") else {
        return Err(ChannelError::Malformed);
    };
    Ok(match class.as_str() {
        "ReceiverVideoConstraints" => {
            let max_height = |c: &Value| c.get("maxHeight").and_then(int);
            ClientMessage::ReceiverVideoConstraints(ConstraintsUpdate {
                last_n: m.get("lastN").and_then(int),
                on_stage: m.get("onStageSources").and_then(strings),
                selected: m.get("selectedSources").and_then(strings),
                default_max_height: m.get("defaultConstraints").and_then(max_height),
                max_height: m.get("constraints").and_then(Value::as_object).map(|c| {
                    c.iter()
                        .filter_map(|(name, v)| Some((name.clone(), max_height(v)?)))
                        .collect()
                }),
            })
        }
        "SourceVideoTypeMessage" => ClientMessage::SourceVideoType {
            source_name: m
                .get("sourceName")
                .and_then(Value::as_str)
                .ok_or(ChannelError::Malformed)?
                .to_string(),
            video_type: m
                .get("videoType")
                .and_then(Value::as_str)
                .unwrap_or("camera")
                .to_string(),
        },
        "EndpointMessage" => {
            let to = m
                .get("to")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            m.remove("from");
            ClientMessage::EndpointMessage { to, message: m }
        }
        "EndpointStats" => {
            m.remove("from");
            ClientMessage::EndpointStats { message: m }
        }
        "LastNChangedEvent" => ClientMessage::LastNChanged {
            last_n: m
                .get("lastN")
                .and_then(int)
                .ok_or(ChannelError::Malformed)?,
        },
        _ => ClientMessage::Ignored(class),
    })
}

/// A relayed message: the sender's fields plus `colibriClass` and `from`.
pub fn relayed(class: &str, from: &str, mut message: Map<String, Value>) -> String {
    message.insert("colibriClass".into(), class.into());
    message.insert("from".into(), from.into());
    Value::Object(message).to_string()
}

pub fn server_hello() -> String {
    json!({"colibriClass": "ServerHello", "version": env!("CARGO_PKG_VERSION")}).to_string()
}

pub fn dominant_speaker(endpoint: &str, previous: &[String]) -> String {
    json!({
        "colibriClass": "DominantSpeakerEndpointChangeEvent",
        "dominantSpeakerEndpoint": endpoint,
        "previousSpeakers": previous,
        "silence": false,
    })
    .to_string()
}

pub fn forwarded_sources(names: &[String]) -> String {
    json!({"colibriClass": "ForwardedSources", "forwardedSources": names}).to_string()
}

pub fn sender_source_constraints(source: &str, max_height: i32) -> String {
    json!({"colibriClass": "SenderSourceConstraints", "sourceName": source, "maxHeight": max_height})
        .to_string()
}

pub fn connection_stats(estimated_downlink_bps: u64) -> String {
    json!({"colibriClass": "ConnectionStats", "estimatedDownlinkBandwidth": estimated_downlink_bps})
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_constraints_update_only_present_fields() {
        let msg = parse(
            r#"{"colibriClass":"ReceiverVideoConstraints","lastN":3,"onStageSources":["a-v0"],
                "defaultConstraints":{"maxHeight":180},"constraints":{"a-v0":{"maxHeight":720}}}"#,
        )
        .unwrap();
        let mut c = Constraints::default();
        let ClientMessage::ReceiverVideoConstraints(update) = msg else {
            panic!("{msg:?}")
        };
        update.apply(&mut c);
        assert_eq!((c.last_n, c.default_max_height), (3, 180));
        assert_eq!(c.max_height_of("a-v0"), 720);
        assert_eq!(c.on_stage, vec!["a-v0".to_string()]);

        let ClientMessage::ReceiverVideoConstraints(update) =
            parse(r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1}"#).unwrap()
        else {
            panic!()
        };
        update.apply(&mut c);
        assert_eq!((c.last_n, c.default_max_height), (-1, 180));
    }

    #[test]
    fn endpoint_message_relay_replaces_a_forged_from() {
        let msg = parse(
            r#"{"colibriClass":"EndpointMessage","from":"mallory","to":"","msgPayload":{"x":1}}"#,
        )
        .unwrap();
        let ClientMessage::EndpointMessage { to, message } = msg else {
            panic!()
        };
        assert_eq!(to, "");
        let out: Value =
            serde_json::from_str(&relayed("EndpointMessage", "alice", message)).unwrap();
        assert_eq!(out["from"], "alice");
        assert_eq!(out["msgPayload"]["x"], 1);
        assert_eq!(out["colibriClass"], "EndpointMessage");
    }

    #[test]
    fn bad_messages_are_rejected() {
        assert_eq!(parse("not json"), Err(ChannelError::Malformed));
        assert_eq!(parse("[1,2]"), Err(ChannelError::Malformed));
        assert_eq!(parse(r#"{"colibriClass":5}"#), Err(ChannelError::Malformed));
        assert_eq!(
            parse(&" ".repeat(MAX_MESSAGE_BYTES + 1)),
            Err(ChannelError::TooLarge)
        );
        assert_eq!(
            parse(r#"{"colibriClass":"ClientHello"}"#),
            Ok(ClientMessage::Ignored("ClientHello".into()))
        );
    }
}
