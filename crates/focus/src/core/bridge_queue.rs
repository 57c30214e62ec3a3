//! Which bridge a conference goes to, and the per-conference FIFO of its bridge requests.
//!
//! The bridge requests of one conference run one at a time, in order, so an expiry can never
//! overtake the allocation it undoes; different conferences (and bridges) run in parallel.

use std::collections::{HashMap, VecDeque};

use convene_colibri::{BridgeId, BridgeRequest, ConferenceId};

use super::outbox::{Output, RequestId};

/// What a bridge response is for, when it matters.
#[derive(Debug, Clone)]
pub(super) enum Purpose {
    Allocate { nick: String, sid: String },
    Other,
}

#[derive(Default)]
struct ConferenceQueue {
    in_flight: Option<(RequestId, Purpose)>,
    waiting: VecDeque<(BridgeRequest, Purpose)>,
}

/// Per (bridge, conference) FIFO of bridge requests with at most one in flight.
#[derive(Default)]
pub(super) struct BridgeQueues {
    queues: HashMap<(BridgeId, ConferenceId), ConferenceQueue>,
}

impl BridgeQueues {
    pub fn push(
        &mut self,
        bridge: &BridgeId,
        request: BridgeRequest,
        purpose: Purpose,
        next_id: &mut u64,
        outputs: &mut VecDeque<Output>,
    ) {
        let conference = request.conference().clone();
        let key = (bridge.clone(), conference);
        let queue = self.queues.entry(key.clone()).or_default();
        queue.waiting.push_back((request, purpose));
        self.pump(&key.0, &key.1, next_id, outputs);
    }

    pub fn pump(
        &mut self,
        bridge: &BridgeId,
        conference: &ConferenceId,
        next_id: &mut u64,
        outputs: &mut VecDeque<Output>,
    ) {
        let key = (bridge.clone(), conference.clone());
        let Some(queue) = self.queues.get_mut(&key) else {
            return;
        };
        if queue.in_flight.is_some() {
            return;
        }
        match queue.waiting.pop_front() {
            Some((request, purpose)) => {
                *next_id += 1;
                let id = RequestId(*next_id);
                queue.in_flight = Some((id, purpose));
                outputs.push_back(Output::Bridge {
                    bridge: key.0,
                    id,
                    request,
                });
            }
            None => {
                self.queues.remove(&key);
            }
        }
    }

    /// Ends `bridge`'s in-flight request `id`; returns its conference and purpose.
    pub fn complete(
        &mut self,
        bridge: &BridgeId,
        id: RequestId,
    ) -> Option<(ConferenceId, Purpose)> {
        self.queues
            .iter_mut()
            .filter(|((on, _), _)| on == bridge)
            .find_map(|((_, conference), queue)| {
                queue
                    .in_flight
                    .take_if(|(in_flight, _)| *in_flight == id)
                    .map(|(_, purpose)| (conference.clone(), purpose))
            })
    }
}

/// The bridge for a new conference: the one with the fewest conferences (`placed` lists the
/// bridge of each current one), the earliest registered on a tie. With one bridge, that one.
pub(super) fn select_bridge<'a, 'b>(
    bridges: &'a [BridgeId],
    placed: impl Iterator<Item = &'b BridgeId> + Clone,
) -> Option<&'a BridgeId> {
    bridges
        .iter()
        .min_by_key(|bridge| placed.clone().filter(|on| on == bridge).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<BridgeId> {
        names.iter().map(|n| BridgeId((*n).into())).collect()
    }

    #[test]
    fn a_new_conference_goes_to_the_least_used_bridge() {
        let bridges = ids(&["a", "b"]);
        assert_eq!(select_bridge(&bridges, [].iter()), Some(&bridges[0]));
        let placed = ids(&["a"]);
        assert_eq!(select_bridge(&bridges, placed.iter()), Some(&bridges[1]));
        let placed = ids(&["a", "b"]);
        assert_eq!(select_bridge(&bridges, placed.iter()), Some(&bridges[0]));
        assert_eq!(select_bridge(&[], placed.iter()), None);
    }
}
