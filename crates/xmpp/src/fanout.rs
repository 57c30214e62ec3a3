//! Fan-out budgets of the rooms, with fair queuing; sans-IO, fed `now`, run by the hub.
//!
//! A stanza that reaches a whole room costs one delivery per occupant, so a few senders,
//! each within its connection's rate limit, can make a room cost what thousands of
//! connections would. As Prosody's `mod_muc_limits` (a budget per room) and Jitsi's
//! `mod_muc_rate_limit` (joins queued per room) do, and with a fair queue between senders:
//!
//! - each room has a budget of deliveries per second; each sender (a bare JID, over all its
//!   resources) a budget of broadcasts per second into a room. A broadcast within its
//!   sender's budget goes out at once, charged to the room (which may run into debt, down to
//!   one burst); one beyond it waits in its sender's queue, released at the sender's own rate
//!   as the room's budget allows, the queues taking turns round robin (deficit round robin
//!   with one quantum per turn: within a room every broadcast costs the same, its audience).
//!   So however idle the room's budget, a flooder's broadcasts reach everyone at its
//!   sender rate, which is what each occupant's client must read. A sender whose queue is
//!   full is refused.
//!   A queued presence update is replaced by a later one of the same occupant.
//! - joins cost twice the room's size; each room has a budget of joins per second and each
//!   source address one over all rooms. Joins over the room's budget wait in its join queue
//!   (released before its broadcasts, so that presence is never starved), or are refused
//!   (`service-unavailable`, what a Jitsi client shows as a full room) when the queue or the
//!   address's budget is exhausted.
//! - leaves are never refused: they go out at once unless the sender has broadcasts queued
//!   in the room (then they follow them), and a leave whose join still waits cancels it.
//!
//! Internal entities (the focus) never pass through here.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use jid::{BareJid, Jid};
use minidom::Element;

use crate::component::Fanout;
use crate::token_bucket::TokenBucket as Bucket;

/// Rooms, senders and addresses kept before the idle ones are swept out.
const SWEEP_ABOVE: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct FanoutConfig {
    pub room_deliveries_per_second: f64,
    pub room_delivery_burst: f64,
    pub sender_broadcasts_per_second: f64,
    pub sender_broadcast_burst: f64,
    /// Broadcasts one sender may have waiting in one room.
    pub sender_queue: usize,
    pub room_joins_per_second: f64,
    pub room_join_burst: f64,
    /// Joins one room may have waiting.
    pub join_queue: usize,
    pub address_joins_per_second: f64,
    pub address_join_burst: f64,
}

/// What became of a stanza handed to [`Budgets::admit`].
#[derive(Debug)]
pub enum Verdict {
    /// Route it now.
    Now(Element),
    /// Held; [`Budgets::release`] hands it back. `wake`: when to call it, if that is
    /// earlier than what was asked before.
    Queued { wake: Option<Instant> },
    /// It replaced an earlier presence update still held.
    Coalesced,
    /// Refused: answer it with an error.
    Refused(Element),
    /// A leave that cancelled its own waiting join: nothing to route.
    Cancelled,
}

/// A held stanza, with the sender it came from.
#[derive(Debug)]
pub struct Held {
    pub from: Jid,
    pub stanza: Element,
}

struct SenderQueue {
    budget: Bucket,
    queue: VecDeque<Held>,
}

struct Room {
    deliveries: Bucket,
    joins: Bucket,
    join_queue: VecDeque<Held>,
    senders: HashMap<BareJid, SenderQueue>,
    /// Senders with something queued, in turn order.
    turns: VecDeque<BareJid>,
    /// The release asked for, if any.
    wake: Option<Instant>,
    /// Occupants, as of the last stanza admitted.
    audience: usize,
}

impl Room {
    fn held(&self) -> usize {
        self.join_queue.len() + self.senders.values().map(|s| s.queue.len()).sum::<usize>()
    }

    /// When the next held stanza may go, if any is held.
    fn next_release(&self) -> Option<Instant> {
        let join = (!self.join_queue.is_empty())
            .then(|| self.joins.reaches(1.0).max(self.deliveries.reaches(0.0)));
        let broadcast = self
            .turns
            .iter()
            .filter_map(|bare| self.senders.get(bare))
            .map(|sender| sender.budget.reaches(1.0))
            .min()
            .map(|sender| sender.max(self.deliveries.reaches(0.0)));
        join.into_iter().chain(broadcast).min()
    }
}

pub struct Budgets {
    config: FanoutConfig,
    rooms: HashMap<BareJid, Room>,
    addresses: HashMap<IpAddr, Bucket>,
}

impl Budgets {
    pub fn new(config: FanoutConfig) -> Self {
        Self {
            config,
            rooms: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    /// Stanzas held now, over all rooms.
    pub fn held(&self) -> usize {
        self.rooms.values().map(Room::held).sum()
    }

    /// Decides what becomes of `stanza` from the client `from` at `source`, which fans out
    /// as `fanout`. A held stanza comes back from [`Self::release`].
    pub fn admit(
        &mut self,
        now: Instant,
        from: &Jid,
        source: IpAddr,
        fanout: Fanout,
        stanza: Element,
    ) -> Verdict {
        let config = self.config;
        let (room_jid, audience) = match &fanout {
            Fanout::Join { room, audience }
            | Fanout::Leave { room, audience }
            | Fanout::Broadcast { room, audience, .. } => (room.clone(), *audience),
        };
        if self.rooms.len() > SWEEP_ABOVE {
            self.rooms.retain(|_, room| {
                room.held() > 0 || !room.deliveries.full(now) || !room.joins.full(now)
            });
        }
        let room = self.rooms.entry(room_jid).or_insert_with(|| Room {
            deliveries: Bucket::new(
                config.room_deliveries_per_second,
                config.room_delivery_burst,
                now,
            ),
            joins: Bucket::new(config.room_joins_per_second, config.room_join_burst, now),
            join_queue: VecDeque::new(),
            senders: HashMap::new(),
            turns: VecDeque::new(),
            wake: None,
            audience,
        });
        room.audience = audience;
        let held = Held {
            from: from.clone(),
            stanza,
        };
        let verdict = match fanout {
            Fanout::Join { .. } => {
                if self.addresses.len() > SWEEP_ABOVE {
                    self.addresses.retain(|_, bucket| !bucket.full(now));
                }
                let address = self.addresses.entry(source).or_insert_with(|| {
                    Bucket::new(
                        config.address_joins_per_second,
                        config.address_join_burst,
                        now,
                    )
                });
                if address.balance(now) < 1.0 {
                    return Verdict::Refused(held.stanza);
                }
                address.charge(1.0);
                Self::join(room, now, held, &config)
            }
            Fanout::Leave { .. } => Self::leave(room, now, held),
            Fanout::Broadcast { presence, .. } => {
                Self::broadcast(room, now, held, presence, &config)
            }
        };
        match verdict {
            Verdict::Queued { .. } => Verdict::Queued {
                wake: Self::ask_wake(room),
            },
            other => other,
        }
    }

    fn join(room: &mut Room, now: Instant, held: Held, config: &FanoutConfig) -> Verdict {
        if let Some(waiting) = room.join_queue.iter_mut().find(|h| h.from == held.from) {
            *waiting = held;
            return Verdict::Coalesced;
        }
        let cost = 2.0 * room.audience as f64;
        if room.join_queue.is_empty()
            && room.joins.balance(now) >= 1.0
            && room.deliveries.balance(now) > -room.deliveries.burst()
        {
            room.joins.charge(1.0);
            room.deliveries.charge(cost);
            return Verdict::Now(held.stanza);
        }
        if room.join_queue.len() >= config.join_queue {
            return Verdict::Refused(held.stanza);
        }
        room.join_queue.push_back(held);
        Verdict::Queued { wake: None }
    }

    fn leave(room: &mut Room, now: Instant, held: Held) -> Verdict {
        let waiting_join = room.join_queue.iter().position(|h| h.from == held.from);
        if let Some(index) = waiting_join {
            room.join_queue.remove(index);
            return Verdict::Cancelled;
        }
        let bare = held.from.to_bare();
        if let Some(sender) = room.senders.get_mut(&bare)
            && !sender.queue.is_empty()
        {
            sender.queue.push_back(held);
            return Verdict::Queued { wake: None };
        }
        room.deliveries.balance(now);
        room.deliveries.charge(room.audience as f64);
        Verdict::Now(held.stanza)
    }

    fn broadcast(
        room: &mut Room,
        now: Instant,
        held: Held,
        presence: bool,
        config: &FanoutConfig,
    ) -> Verdict {
        let bare = held.from.to_bare();
        let sender = room
            .senders
            .entry(bare.clone())
            .or_insert_with(|| SenderQueue {
                budget: Bucket::new(
                    config.sender_broadcasts_per_second,
                    config.sender_broadcast_burst,
                    now,
                ),
                queue: VecDeque::new(),
            });
        if presence
            && let Some(earlier) = sender.queue.iter_mut().find(|h| {
                h.from == held.from
                    && h.stanza.name() == "presence"
                    && h.stanza.attr("type").is_none()
            })
        {
            *earlier = held;
            return Verdict::Coalesced;
        }
        if sender.queue.is_empty()
            && sender.budget.balance(now) >= 1.0
            && room.deliveries.balance(now) > -room.deliveries.burst()
        {
            sender.budget.charge(1.0);
            room.deliveries.charge(room.audience as f64);
            return Verdict::Now(held.stanza);
        }
        if sender.queue.len() >= config.sender_queue {
            return Verdict::Refused(held.stanza);
        }
        if sender.queue.is_empty() {
            room.turns.push_back(bare);
        }
        sender.queue.push_back(held);
        Verdict::Queued { wake: None }
    }

    /// The room's next release, if it is earlier than the one already asked for.
    fn ask_wake(room: &mut Room) -> Option<Instant> {
        let next = room.next_release()?;
        if room.wake.is_some_and(|asked| asked <= next) {
            return None;
        }
        room.wake = Some(next);
        Some(next)
    }

    /// What `room` may let go now (joins first, then broadcasts round robin between the
    /// senders), given its `audience`; and when to call again, if anything is still held.
    pub fn release(
        &mut self,
        now: Instant,
        room_jid: &BareJid,
        audience: usize,
    ) -> (Vec<Held>, Option<Instant>) {
        let mut out = Vec::new();
        let Some(room) = self.rooms.get_mut(room_jid) else {
            return (out, None);
        };
        room.audience = audience;
        room.wake = None;
        // Senders passed over in a row for being beyond their own rate.
        let mut out_of_budget = 0;
        loop {
            let deliveries = room.deliveries.balance(now);
            if deliveries <= 0.0 {
                break;
            }
            if !room.join_queue.is_empty() && room.joins.balance(now) >= 1.0 {
                let join = room.join_queue.pop_front().expect("not empty");
                room.joins.charge(1.0);
                room.deliveries.charge(2.0 * room.audience as f64);
                out.push(join);
                continue;
            }
            let Some(bare) = room.turns.pop_front() else {
                break;
            };
            let sender = room.senders.get_mut(&bare).expect("a turn has a sender");
            if sender.queue.is_empty() {
                continue;
            }
            // A sender beyond its own rate waits for it, whatever the room could take: its
            // turn passes to the next.
            if sender.budget.balance(now) < 1.0 {
                room.turns.push_back(bare);
                out_of_budget += 1;
                if out_of_budget >= room.turns.len() {
                    break;
                }
                continue;
            }
            out_of_budget = 0;
            let held = sender.queue.pop_front().expect("not empty");
            sender.budget.charge(1.0);
            room.deliveries.charge(room.audience as f64);
            if !sender.queue.is_empty() {
                room.turns.push_back(bare);
            }
            out.push(held);
        }
        let wake = Self::ask_wake(room);
        if room.held() == 0 {
            room.senders.retain(|_, s| !s.budget.full(now));
        }
        (out, wake)
    }

    /// The session at `jid` ended: what it had held goes nowhere.
    pub fn forget(&mut self, jid: &Jid) {
        for room in self.rooms.values_mut() {
            room.join_queue.retain(|h| &h.from != jid);
            if let Some(sender) = room.senders.get_mut(&jid.to_bare()) {
                sender.queue.retain(|h| &h.from != jid);
            }
            let senders = &room.senders;
            room.turns
                .retain(|bare| senders.get(bare).is_some_and(|s| !s.queue.is_empty()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza::n;
    use std::time::Duration;

    const CONFIG: FanoutConfig = FanoutConfig {
        room_deliveries_per_second: 1000.0,
        room_delivery_burst: 1000.0,
        sender_broadcasts_per_second: 2.0,
        sender_broadcast_burst: 5.0,
        sender_queue: 20,
        room_joins_per_second: 2.0,
        room_join_burst: 3.0,
        join_queue: 4,
        address_joins_per_second: 5.0,
        address_join_burst: 6.0,
    };
    const AUDIENCE: usize = 100;

    fn room() -> BareJid {
        BareJid::new("room@conference.d.test").unwrap()
    }

    fn jid(user: &str) -> Jid {
        Jid::new(&format!("{user}@d.test/r")).unwrap()
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    fn message(body: &str) -> Element {
        Element::builder("message", crate::stanza::ns::CLIENT)
            .attr(n("type"), "groupchat")
            .attr(n("id"), body)
            .build()
    }

    fn broadcast() -> Fanout {
        Fanout::Broadcast {
            room: room(),
            audience: AUDIENCE,
            presence: false,
        }
    }

    #[test]
    fn a_flooder_waits_its_turn_while_the_others_go_at_once() {
        let mut budgets = Budgets::new(CONFIG);
        let now = Instant::now();
        let mut verdicts = Vec::new();
        for i in 0..20 {
            verdicts.push(budgets.admit(
                now,
                &jid("flood"),
                ip(1),
                broadcast(),
                message(&i.to_string()),
            ));
        }
        // Five within its budget, then held; the room's burst (10 broadcasts) is spent.
        assert!(verdicts[..5].iter().all(|v| matches!(v, Verdict::Now(_))));
        assert!(matches!(verdicts[5], Verdict::Queued { wake: Some(_) }));
        assert!(
            verdicts[6..]
                .iter()
                .all(|v| matches!(v, Verdict::Queued { wake: None }))
        );
        assert_eq!(budgets.held(), 15);

        // An innocent within its own budget goes out at once, however much is held.
        for i in 0..3 {
            let verdict = budgets.admit(
                now,
                &jid("innocent"),
                ip(2),
                broadcast(),
                message(&format!("i{i}")),
            );
            assert!(matches!(verdict, Verdict::Now(_)));
        }

        // The sender's own budget (2 a second) lets the held ones go, in order.
        let mut released = Vec::new();
        let mut at = now;
        for step in 0..80 {
            if step == 10 {
                // A second on, 2 of the 15: the room's spare budget does not speed it up.
                assert_eq!(released.len(), 2, "{released:?}");
            }
            at += Duration::from_millis(100);
            let (held, _) = budgets.release(at, &room(), AUDIENCE);
            released.extend(
                held.into_iter()
                    .map(|h| h.stanza.attr("id").unwrap().to_owned()),
            );
        }
        let expected: Vec<String> = (5..20).map(|i| i.to_string()).collect();
        assert_eq!(released, expected, "each once, in order");
        assert_eq!(budgets.held(), 0);
    }

    #[test]
    fn held_senders_are_released_round_robin_and_a_full_queue_is_refused() {
        let mut budgets = Budgets::new(CONFIG);
        let now = Instant::now();
        for who in ["a", "b"] {
            for i in 0..25 {
                budgets.admit(
                    now,
                    &jid(who),
                    ip(1),
                    broadcast(),
                    message(&format!("{who}{i}")),
                );
            }
        }
        // 5 + 5 went at once, 20 wait each; the rest was refused.
        assert_eq!(budgets.held(), 40);
        let verdict = budgets.admit(now, &jid("a"), ip(1), broadcast(), message("more"));
        assert!(matches!(verdict, Verdict::Refused(_)));
        // A second on, the room could take 10, each sender's rate allows 2.
        let (held, wake) = budgets.release(now + Duration::from_secs(1), &room(), AUDIENCE);
        let order: Vec<&str> = held.iter().map(|h| h.stanza.attr("id").unwrap()).collect();
        assert_eq!(order, ["a5", "b5", "a6", "b6"]);
        assert!(wake.is_some());
    }

    #[test]
    fn a_held_presence_update_is_replaced_by_a_later_one() {
        let mut budgets = Budgets::new(CONFIG);
        let now = Instant::now();
        let presence = |id: &str| {
            Element::builder("presence", crate::stanza::ns::CLIENT)
                .attr(n("id"), id)
                .build()
        };
        let update = || Fanout::Broadcast {
            room: room(),
            audience: AUDIENCE,
            presence: true,
        };
        for i in 0..5 {
            budgets.admit(now, &jid("a"), ip(1), update(), presence(&i.to_string()));
        }
        assert!(matches!(
            budgets.admit(now, &jid("a"), ip(1), update(), presence("held")),
            Verdict::Queued { .. }
        ));
        budgets.admit(now, &jid("a"), ip(1), broadcast(), message("chat"));
        let verdict = budgets.admit(now, &jid("a"), ip(1), update(), presence("latest"));
        assert!(matches!(verdict, Verdict::Coalesced));
        let (held, _) = budgets.release(now + Duration::from_secs(2), &room(), AUDIENCE);
        let order: Vec<&str> = held.iter().map(|h| h.stanza.attr("id").unwrap()).collect();
        assert_eq!(order, ["latest", "chat"]);
    }

    #[test]
    fn joins_over_the_room_budget_wait_and_the_address_budget_refuses() {
        let mut budgets = Budgets::new(CONFIG);
        let now = Instant::now();
        let join = |audience| Fanout::Join {
            room: room(),
            audience,
        };
        let verdicts: Vec<Verdict> = (0..8u8)
            .map(|i| budgets.admit(now, &jid(&format!("u{i}")), ip(i), join(10), message("j")))
            .collect();
        assert!(
            verdicts[..3].iter().all(|v| matches!(v, Verdict::Now(_))),
            "the room's burst"
        );
        assert!(
            verdicts[3..7]
                .iter()
                .all(|v| matches!(v, Verdict::Queued { .. }))
        );
        assert!(
            matches!(verdicts[7], Verdict::Refused(_)),
            "the join queue is full"
        );

        // A leave cancels its own waiting join; other leaves go out at once.
        let leave = Fanout::Leave {
            room: room(),
            audience: 10,
        };
        let verdict = budgets.admit(now, &jid("u3"), ip(3), leave.clone(), message("l"));
        assert!(matches!(verdict, Verdict::Cancelled));
        let verdict = budgets.admit(now, &jid("u0"), ip(0), leave, message("l"));
        assert!(matches!(verdict, Verdict::Now(_)));
        let (held, wake) = budgets.release(now + Duration::from_millis(500), &room(), 10);
        assert_eq!(held.len(), 1, "two joins a second");
        assert_eq!(held[0].from, jid("u4"));
        assert!(wake.is_some());

        // One address over all rooms: its burst, then refusals.
        let other = BareJid::new("other@conference.d.test").unwrap();
        let verdicts: Vec<Verdict> = (0..8)
            .map(|i| {
                let fanout = Fanout::Join {
                    room: other.clone(),
                    audience: 0,
                };
                budgets.admit(now, &jid(&format!("v{i}")), ip(200), fanout, message("j"))
            })
            .collect();
        let refused = verdicts.iter().filter(|v| matches!(v, Verdict::Refused(_)));
        assert_eq!(refused.count(), 2);
    }

    #[test]
    fn what_a_gone_session_held_is_forgotten() {
        let mut budgets = Budgets::new(CONFIG);
        let now = Instant::now();
        for i in 0..10 {
            budgets.admit(now, &jid("a"), ip(1), broadcast(), message(&i.to_string()));
        }
        assert_eq!(budgets.held(), 5);
        budgets.forget(&jid("a"));
        assert_eq!(budgets.held(), 0);
        let (held, wake) = budgets.release(now + Duration::from_secs(1), &room(), AUDIENCE);
        assert!(held.is_empty());
        assert_eq!(wake, None);
    }
}
