//! The workloads, each run against a server process whose CPU time is sampled
//! around the measured part.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::client::{self, Auth, Client, NS_MUC, NS_MUC_USER, StanzaReader};
use crate::scram::ScramCache;
use crate::server::{self, DOMAIN, GUEST_DOMAIN, MUC_DOMAIN, PASSWORD};

/// Wall-clock time and server CPU time spent on a measured part.
#[derive(Clone, Copy, Debug)]
pub struct Cost {
    pub wall: f64,
    pub server_cpu: f64,
}

/// Measures `work` against the server process `pid`.
async fn measured<T>(
    pid: u32,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, Cost)> {
    let cpu_before = server::cpu_seconds(pid)?;
    let start = Instant::now();
    let value = work.await?;
    let wall = start.elapsed().as_secs_f64();
    let server_cpu = server::cpu_seconds(pid)? - cpu_before;
    Ok((value, Cost { wall, server_cpu }))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Anonymous,
    ScramSha1,
}

/// Logs in with the given mechanism; SCRAM logins cycle through accounts `bench0`..
async fn login_once(
    addr: SocketAddr,
    mechanism: Mechanism,
    index: usize,
    users: usize,
    cache: &ScramCache,
) -> anyhow::Result<Client> {
    match mechanism {
        Mechanism::Anonymous => client::login(addr, GUEST_DOMAIN, &Auth::Anonymous).await,
        Mechanism::ScramSha1 => {
            let username = format!("bench{}", index % users);
            let auth = Auth::ScramSha1 {
                username: &username,
                password: PASSWORD,
                cache,
            };
            client::login(addr, DOMAIN, &auth).await
        }
    }
}

#[derive(Debug)]
pub struct LoginResult {
    /// Logins that went all the way to a bound resource (and session, if required).
    pub completed: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub cost: Cost,
}

/// `count` complete logins (connect, SASL, bind, session, close), `concurrency` at a time.
pub async fn logins(
    addr: SocketAddr,
    pid: u32,
    mechanism: Mechanism,
    count: usize,
    concurrency: usize,
    users: usize,
) -> anyhow::Result<LoginResult> {
    let cache = Arc::new(ScramCache::default());
    // Warm-up (also derives each account's salted password once, as a real client
    // remembers it): not measured.
    for index in 0..users.max(10) {
        login_once(addr, mechanism, index, users, &cache)
            .await?
            .close()
            .await?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let run = async {
        let mut workers = JoinSet::new();
        for _ in 0..concurrency {
            let (next, completed, cache) = (next.clone(), completed.clone(), cache.clone());
            workers.spawn(async move {
                let mut errors = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        return errors;
                    }
                    let attempt = async {
                        let client = login_once(addr, mechanism, index, users, &cache).await?;
                        completed.fetch_add(1, Ordering::Relaxed);
                        client.close().await
                    };
                    if let Err(error) = attempt.await {
                        errors.push(format!("{error:#}"));
                    }
                }
            });
        }
        let mut errors = Vec::new();
        while let Some(worker) = workers.join_next().await {
            errors.extend(worker?);
        }
        Ok(errors)
    };
    let (errors, cost) = measured(pid, run).await?;
    let completed = completed.load(Ordering::Relaxed);
    Ok(LoginResult {
        completed,
        failed: count - completed,
        first_error: errors.into_iter().next(),
        cost,
    })
}

/// Logs in `count` anonymous clients, `concurrency` at a time.
async fn anonymous_clients(
    addr: SocketAddr,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Client>> {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut logins = JoinSet::new();
    for index in 0..count {
        let permits = permits.clone();
        logins.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let client = client::login(addr, GUEST_DOMAIN, &Auth::Anonymous).await;
            client.map(|client| (index, client))
        });
    }
    let mut clients: Vec<Option<Client>> = (0..count).map(|_| None).collect();
    while let Some(login) = logins.join_next().await {
        let (index, client) = login??;
        clients[index] = Some(client);
    }
    Ok(clients.into_iter().flatten().collect())
}

#[derive(Debug)]
pub struct MemoryResult {
    pub clients: usize,
    pub rss_before: u64,
    /// With the first half of the clients connected.
    pub rss_half: u64,
    pub rss_with_clients: u64,
}

impl MemoryResult {
    /// Resident memory added per client, from no client to all of them.
    pub fn bytes_per_client(&self) -> f64 {
        (self.rss_with_clients as f64 - self.rss_before as f64) / self.clients as f64
    }

    /// Resident memory added per client by the second half: without the one-time growth
    /// (allocator arenas, tables) that the first clients pay for.
    pub fn marginal_bytes_per_client(&self) -> f64 {
        let second_half = self.clients - self.clients / 2;
        (self.rss_with_clients as f64 - self.rss_half as f64) / second_half as f64
    }
}

/// Logs in `count` idle anonymous clients that send their initial presence.
async fn idle_clients(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<Client>> {
    let mut clients = anonymous_clients(addr, count, 50).await?;
    for client in &mut clients {
        client.send("<presence/>").await?;
    }
    Ok(clients)
}

/// Resident memory added by `count` idle clients, logged in and available, measured
/// with none, half and all of them connected.
pub async fn idle_memory(addr: SocketAddr, pid: u32, count: usize) -> anyhow::Result<MemoryResult> {
    for client in anonymous_clients(addr, 10, 10).await? {
        client.close().await?;
    }
    let settled_rss = || async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        server::rss_bytes(pid)
    };
    let rss_before = settled_rss().await?;
    let first_half = idle_clients(addr, count / 2).await?;
    let rss_half = settled_rss().await?;
    let second_half = idle_clients(addr, count - count / 2).await?;
    let rss_with_clients = settled_rss().await?;
    drop((first_half, second_half));
    Ok(MemoryResult {
        clients: count,
        rss_before,
        rss_half,
        rss_with_clients,
    })
}

pub struct FanoutParams {
    pub occupants: usize,
    /// Messages sent at a fixed rate first, to measure latency below saturation.
    pub paced_messages: usize,
    pub paced_rate: f64,
    /// Then messages sent as fast as the window allows.
    pub saturated_messages: usize,
    /// Messages in flight (not yet delivered to every other occupant) at most.
    pub window: usize,
}

#[derive(Debug)]
pub struct Phase {
    /// Messages received by occupants other than the sender.
    pub deliveries: usize,
    pub cost: Cost,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug)]
pub struct FanoutResult {
    pub paced: Phase,
    pub saturated: Phase,
}

/// State shared by the sender and every occupant's receiver.
struct Tracker {
    occupants: usize,
    paced_messages: usize,
    epoch: Instant,
    /// Per message: how many occupants other than its sender have received it.
    deliveries: Vec<AtomicU32>,
    /// Messages delivered to every other occupant.
    completed: watch::Sender<usize>,
    window: Semaphore,
}

fn body(id: usize, sender: usize, sent_ns: u128) -> String {
    format!("bench {id} {sender} {sent_ns}")
}

fn parse_body(text: &str) -> Option<(usize, usize, u128)> {
    let mut parts = text.strip_prefix("bench ")?.split(' ');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

#[derive(Default)]
struct Received {
    /// Delivery latencies in microseconds, per phase.
    paced: Vec<u32>,
    saturated: Vec<u32>,
}

/// Reads one occupant's stream until it has seen every message exactly once (its own as
/// the room's echo); a duplicate is an error.
async fn receive(
    me: usize,
    mut reader: StanzaReader,
    tracker: Arc<Tracker>,
) -> anyhow::Result<Received> {
    let total = tracker.deliveries.len();
    let mut seen = vec![false; total];
    let mut count = 0;
    let mut received = Received::default();
    while count < total {
        let stanza = reader.next().await?;
        if stanza.name.as_str() != "message" || stanza.attr("type") != Some("groupchat") {
            continue;
        }
        let Some(parsed) = stanza
            .child("body", "jabber:client")
            .and_then(|b| parse_body(&b.text))
        else {
            continue;
        };
        let (id, sender, sent_ns) = parsed;
        let latency_us =
            ((tracker.epoch.elapsed().as_nanos().saturating_sub(sent_ns)) / 1000) as u32;
        if id >= total || std::mem::replace(&mut seen[id], true) {
            bail!("occupant {me} received message {id} twice (or an unknown one)");
        }
        count += 1;
        if sender == me {
            continue;
        }
        if id < tracker.paced_messages {
            received.paced.push(latency_us);
        } else {
            received.saturated.push(latency_us);
        }
        if tracker.deliveries[id].fetch_add(1, Ordering::Relaxed) + 1
            == (tracker.occupants - 1) as u32
        {
            tracker.completed.send_modify(|completed| *completed += 1);
            if id >= tracker.paced_messages {
                tracker.window.add_permits(1);
            }
        }
    }
    Ok(received)
}

/// Joins the room as `nick` and waits for the self-presence; configures the room as an
/// instant room if this join created it (XEP-0045 §10.1.2).
async fn join(client: &mut Client, room: &str, nick: &str) -> anyhow::Result<()> {
    let occupant = format!("{room}/{nick}");
    client
        .send(&format!(
            "<presence to='{occupant}'><x xmlns='{NS_MUC}'/></presence>"
        ))
        .await?;
    loop {
        let stanza = client.reader.reply().await?;
        if stanza.name.as_str() != "presence" || stanza.attr("from") != Some(occupant.as_str()) {
            continue;
        }
        if stanza.attr("type") == Some("error") {
            bail!("cannot join {room} as {nick}");
        }
        let created = stanza.child("x", NS_MUC_USER).is_some_and(|x| {
            x.children
                .iter()
                .any(|c| c.name.as_str() == "status" && c.attr("code") == Some("201"))
        });
        if created {
            client
                .send(&format!(
                    "<iq type='set' id='instant' to='{room}'><query xmlns='{NS_MUC}#owner'>\
                     <x xmlns='jabber:x:data' type='submit'/></query></iq>"
                ))
                .await?;
            // Accepted or refused, the room is usable (Convene does not lock new rooms).
            while client.reader.reply().await?.attr("id") != Some("instant") {}
        }
        return Ok(());
    }
}

/// Sends message `id` from occupant `id % occupants`, stamped with the time since `epoch`.
async fn send_message(
    writers: &mut [OwnedWriteHalf],
    room: &str,
    id: usize,
    epoch: Instant,
) -> std::io::Result<()> {
    let sender = id % writers.len();
    let stanza = format!(
        "<message to='{room}' type='groupchat'><body>{}</body></message>",
        body(id, sender, epoch.elapsed().as_nanos())
    );
    writers[sender].write_all(stanza.as_bytes()).await
}

/// Waits until `target` messages have reached every other occupant.
async fn all_delivered(
    completed: &mut watch::Receiver<usize>,
    target: usize,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(60);
    let reached = tokio::time::timeout(timeout, completed.wait_for(|done| *done >= target))
        .await
        .map(|result| result.is_ok());
    match reached {
        Ok(true) => Ok(()),
        Ok(false) => bail!("the receivers stopped"),
        Err(_) => bail!(
            "only {} of {target} messages reached every occupant within {timeout:?}",
            *completed.borrow()
        ),
    }
}

fn percentile_ms(sorted_us: &[u32], fraction: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted_us.len() as f64 * fraction).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

fn phase(messages: usize, occupants: usize, mut latencies: Vec<u32>, cost: Cost) -> Phase {
    latencies.sort_unstable();
    Phase {
        deliveries: messages * (occupants - 1),
        cost,
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
    }
}

/// One room of `occupants`; groupchat messages from every occupant in turn, each checked
/// to reach all other occupants exactly once.
pub async fn fanout(
    addr: SocketAddr,
    pid: u32,
    params: &FanoutParams,
) -> anyhow::Result<FanoutResult> {
    let occupants = params.occupants;
    let room = format!("bench@{MUC_DOMAIN}");
    let mut clients = anonymous_clients(addr, occupants, 10).await?;
    for (index, client) in clients.iter_mut().enumerate() {
        join(client, &room, &format!("occupant{index}"))
            .await
            .with_context(|| format!("occupant {index}"))?;
    }
    let total = params.paced_messages + params.saturated_messages;
    let (completed_tx, mut completed) = watch::channel(0);
    let tracker = Arc::new(Tracker {
        occupants,
        paced_messages: params.paced_messages,
        epoch: Instant::now(),
        deliveries: (0..total).map(|_| AtomicU32::new(0)).collect(),
        completed: completed_tx,
        window: Semaphore::new(params.window),
    });
    let mut writers: Vec<OwnedWriteHalf> = Vec::with_capacity(occupants);
    let mut receivers = JoinSet::new();
    for (index, client) in clients.into_iter().enumerate() {
        writers.push(client.writer);
        receivers.spawn(receive(index, client.reader, tracker.clone()));
    }
    let paced = async {
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / params.paced_rate));
        for id in 0..params.paced_messages {
            ticks.tick().await;
            send_message(&mut writers, &room, id, tracker.epoch).await?;
        }
        all_delivered(&mut completed, params.paced_messages).await
    };
    let ((), paced_cost) = measured(pid, paced).await?;
    let saturated = async {
        for id in params.paced_messages..total {
            tracker.window.acquire().await?.forget();
            send_message(&mut writers, &room, id, tracker.epoch).await?;
        }
        all_delivered(&mut completed, total).await
    };
    let ((), saturated_cost) = measured(pid, saturated).await?;

    let mut paced_latencies = Vec::new();
    let mut saturated_latencies = Vec::new();
    let collect = async {
        while let Some(received) = receivers.join_next().await {
            let received = received??;
            paced_latencies.extend(received.paced);
            saturated_latencies.extend(received.saturated);
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(30), collect)
        .await
        .map_err(|_| anyhow!("an occupant did not receive its own messages back"))??;
    Ok(FanoutResult {
        paced: phase(
            params.paced_messages,
            occupants,
            paced_latencies,
            paced_cost,
        ),
        saturated: phase(
            params.saturated_messages,
            occupants,
            saturated_latencies,
            saturated_cost,
        ),
    })
}
