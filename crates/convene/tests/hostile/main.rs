//! Issue 15's hostile load against the real binary on loopback, with its defaults: ten
//! innocent occupants of one room chat at 20 messages a second through slixmpp
//! (`tests/peers/innocents.py`) while the attacks of the issue run one after the other
//! (`attacks.rs`, raw sockets from other loopback addresses, as attackers elsewhere would
//! come from other addresses). During every attack the innocents' p99 stays under five
//! times their baseline plus 50 ms, nothing of theirs is lost or doubled, nobody innocent
//! is disconnected, slow and silent connections are closed within the documented
//! timeouts, the server stays up and its memory bounded. Figures: `docs/hardening.md`.

#[path = "../common/mod.rs"]
mod common;

mod attacks;
mod innocents;
mod raw;

use std::time::{Duration, Instant};

use common::{Convene, DOMAIN};
use innocents::Innocents;

const ACCOUNT: (&str, &str) = ("alice", "the real one");
const INNOCENTS: usize = 10;
/// Python processes the innocents are spread over (one interpreter each).
const PROCESSES: usize = 5;
const CHAT_RATE: f64 = 20.0;
/// Peak resident memory allowed over the server's own at the start.
const MEMORY_HEADROOM_KIB: u64 = 128 * 1024;

/// The phases run in order; each message of the innocents belongs to the phase it was sent in.
struct Run {
    convene: Convene,
    innocents: Innocents,
    order: Vec<String>,
    figures: Vec<(String, String, u64)>,
    started: Instant,
}

/// The shortest phase: long enough for the innocents to send in it.
const PHASE_AT_LEAST: Duration = Duration::from_secs(1);

impl Run {
    async fn phase(&mut self, name: &str) {
        self.innocents.phase(name).await;
        self.order.push(name.to_owned());
        self.started = Instant::now();
    }

    /// Records an attack's figures with the server's memory at its end.
    async fn done(&mut self, figures: String) {
        tokio::time::sleep_until((self.started + PHASE_AT_LEAST).into()).await;
        assert!(
            self.convene.running(),
            "convene died during {:?}",
            self.order.last()
        );
        let rss = self.convene.rss_kib();
        let phase = self.order.last().unwrap().clone();
        println!("{phase}: {figures}; server RSS {} MiB", rss / 1024);
        self.figures.push((phase, figures, rss));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn innocent_occupants_are_unharmed_by_every_attack_of_issue_15() {
    let convene = Convene::start("hostile");
    convene.add_user(ACCOUNT.0, ACCOUNT.1);
    let (http, c2s) = (convene.http, convene.c2s);
    let room = format!("lobby@conference.{DOMAIN}");
    let innocents = Innocents::join(c2s.port(), &room, INNOCENTS, PROCESSES, CHAT_RATE).await;
    let start_rss = convene.rss_kib();
    let mut run = Run {
        convene,
        innocents,
        order: Vec::new(),
        figures: Vec::new(),
        started: Instant::now(),
    };

    run.phase("baseline").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.done(format!(
        "{CHAT_RATE} messages/s among {INNOCENTS} innocents"
    ))
    .await;

    run.phase("flood").await;
    let figures = attacks::flood(c2s, &room, Duration::from_secs(3)).await;
    run.done(figures).await;

    run.phase("join-storm").await;
    let figures = attacks::join_storm(c2s, &room, Duration::from_secs(5)).await;
    run.done(figures).await;

    run.phase("password-guessing").await;
    let figures = attacks::guess(c2s, ACCOUNT, Duration::from_secs(5)).await;
    run.done(figures).await;

    run.phase("idle-sockets").await;
    let figures = attacks::idle_sockets(http, c2s).await;
    run.done(figures).await;

    run.phase("pipelined-cut").await;
    let figures = attacks::pipelined_cut(c2s, http).await;
    run.done(figures).await;

    // What the last attack left in flight reaches the innocents before they stop.
    run.phase("after").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let Run {
        mut convene,
        innocents,
        order,
        figures,
        ..
    } = run;
    let seen = innocents.stop(&order).await;

    assert!(convene.running(), "convene died");
    assert_eq!(convene.get("/about/health").status, 200);
    let peak_rss = figures.iter().map(|(_, _, rss)| *rss).max().unwrap();
    println!(
        "innocents: {} messages, each to {INNOCENTS}; server RSS {} MiB at the start, {} MiB at the peak",
        seen.sent,
        start_rss / 1024,
        peak_rss / 1024
    );
    let (_, _, baseline, _) = seen.phases[0].clone();
    let bound = baseline * 5 + Duration::from_millis(50);
    for (phase, p50, p99, count) in &seen.phases {
        println!("innocent latency during {phase}: p50 {p50:?}, p99 {p99:?} ({count} deliveries)");
    }
    assert!(seen.lost.is_empty(), "lost: {:?}", seen.lost);
    assert!(seen.doubled.is_empty(), "doubled: {:?}", seen.doubled);
    assert_eq!(seen.disconnected, 0, "an innocent was disconnected");
    assert_eq!(
        seen.phases
            .iter()
            .map(|(phase, ..)| phase)
            .collect::<Vec<_>>(),
        order.iter().collect::<Vec<_>>(),
        "a phase without innocent messages"
    );
    for (phase, _, p99, _) in &seen.phases {
        assert!(
            *p99 < bound,
            "innocent p99 {p99:?} during {phase}, over {bound:?}"
        );
    }
    assert!(
        peak_rss < start_rss + MEMORY_HEADROOM_KIB,
        "server RSS grew from {start_rss} KiB to {peak_rss} KiB"
    );
}
