//! Which video layer of which source each receiver gets (JVB's "bandwidth allocator").
//!
//! A pure function of the receiver's constraints, the speaker order, the sources' layers
//! and the receiver's estimated downlink: sources are ranked (on-stage, then selected,
//! then most recent speakers), cut to last-N, each limited to its max height; then every
//! ranked source gets its lowest allowed layer while the budget lasts, and the budget left
//! upgrades them in rank order.

use std::collections::HashMap;

/// A receiver's wishes, from its `ReceiverVideoConstraints` messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraints {
    /// How many video sources to forward; negative: all.
    pub last_n: i32,
    pub on_stage: Vec<String>,
    pub selected: Vec<String>,
    /// Max height for sources without their own entry; negative: unconstrained, 0: none.
    pub default_max_height: i32,
    pub max_height: HashMap<String, i32>,
}

impl Default for Constraints {
    /// Until a receiver says otherwise it gets everything, at any height (JVB assumes 180p;
    /// clients that never send constraints would otherwise stay blurry).
    fn default() -> Self {
        Self {
            last_n: -1,
            on_stage: Vec::new(),
            selected: Vec::new(),
            default_max_height: -1,
            max_height: HashMap::new(),
        }
    }
}

impl Constraints {
    pub fn max_height_of(&self, source: &str) -> i32 {
        self.max_height
            .get(source)
            .copied()
            .unwrap_or(self.default_max_height)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    pub height: u32,
    pub bitrate_bps: u64,
    /// Whether the sender currently sends this layer.
    pub active: bool,
}

/// One video source a receiver could get.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub name: &'a str,
    /// Position of the source's owner in the conference's speaker order (0: most recent).
    pub speaker_rank: usize,
    /// Lowest resolution first.
    pub layers: &'a [Layer],
}

/// The layer index to forward per candidate (same order as `candidates`), or `None`.
pub fn allocate(
    constraints: &Constraints,
    candidates: &[Candidate],
    bandwidth_bps: u64,
) -> Vec<Option<usize>> {
    let position = |list: &[String], name: &str| list.iter().position(|n| n == name);
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&i| {
        let c = &candidates[i];
        (
            position(&constraints.on_stage, c.name).unwrap_or(usize::MAX),
            position(&constraints.selected, c.name).unwrap_or(usize::MAX),
            c.speaker_rank,
        )
    });
    if let Ok(last_n) = usize::try_from(constraints.last_n) {
        order.truncate(last_n);
    }

    // Allowed layers per ranked candidate: active ones within the height limit; when a
    // positive limit excludes every layer, the lowest active ones.
    let allowed: Vec<(usize, Vec<usize>)> = order
        .into_iter()
        .filter_map(|i| {
            let c = &candidates[i];
            let max = constraints.max_height_of(c.name);
            if max == 0 {
                return None;
            }
            let active: Vec<usize> = (0..c.layers.len())
                .filter(|&l| c.layers[l].active)
                .collect();
            let mut fitting: Vec<usize> = active
                .iter()
                .copied()
                .filter(|&l| max < 0 || c.layers[l].height <= max as u32)
                .collect();
            if fitting.is_empty()
                && let Some(&lowest) = active.first()
            {
                // Every layer of the lowest height: one simulcast layer, or all the
                // temporal layers of an SVC stream's lowest spatial layer.
                let height = c.layers[lowest].height;
                fitting.extend(
                    active
                        .iter()
                        .copied()
                        .filter(|&l| c.layers[l].height == height),
                );
            }
            (!fitting.is_empty()).then_some((i, fitting))
        })
        .collect();

    let mut result = vec![None; candidates.len()];
    let mut budget = bandwidth_bps;
    for (i, layers) in &allowed {
        let cost = candidates[*i].layers[layers[0]].bitrate_bps;
        if cost <= budget {
            budget -= cost;
            result[*i] = Some(layers[0]);
        }
    }
    for (i, layers) in &allowed {
        let Some(current) = result[*i] else { continue };
        let current_cost = candidates[*i].layers[current].bitrate_bps;
        if let Some(&best) = layers
            .iter()
            .rev()
            .find(|&&l| candidates[*i].layers[l].bitrate_bps <= budget + current_cost)
        {
            budget = budget + current_cost - candidates[*i].layers[best].bitrate_bps;
            result[*i] = Some(best);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMULCAST: [Layer; 3] = [
        Layer {
            height: 180,
            bitrate_bps: 150_000,
            active: true,
        },
        Layer {
            height: 360,
            bitrate_bps: 500_000,
            active: true,
        },
        Layer {
            height: 720,
            bitrate_bps: 1_500_000,
            active: true,
        },
    ];

    fn candidates(names: &[&'static str]) -> Vec<Candidate<'static>> {
        names
            .iter()
            .enumerate()
            .map(|(rank, name)| Candidate {
                name,
                speaker_rank: rank,
                layers: &SIMULCAST,
            })
            .collect()
    }

    #[test]
    fn unconstrained_with_plenty_of_bandwidth_gets_the_top_layer() {
        let got = allocate(
            &Constraints::default(),
            &candidates(&["a-v0", "b-v0"]),
            10_000_000,
        );
        assert_eq!(got, vec![Some(2), Some(2)]);
    }

    #[test]
    fn max_height_picks_the_highest_layer_that_fits() {
        let mut c = Constraints::default();
        c.max_height.insert("a-v0".into(), 360);
        c.default_max_height = 180;
        let got = allocate(&c, &candidates(&["a-v0", "b-v0"]), 10_000_000);
        assert_eq!(got, vec![Some(1), Some(0)]);
        // A limit below every layer still gets the lowest; 0 gets nothing.
        c.max_height.insert("a-v0".into(), 90);
        c.max_height.insert("b-v0".into(), 0);
        assert_eq!(
            allocate(&c, &candidates(&["a-v0", "b-v0"]), 10_000_000),
            vec![Some(0), None]
        );
    }

    #[test]
    fn last_n_keeps_on_stage_then_recent_speakers() {
        let c = Constraints {
            last_n: 2,
            on_stage: vec!["c-v0".into()],
            ..Default::default()
        };
        // Speaker order: a, b, c, d.
        let got = allocate(
            &c,
            &candidates(&["a-v0", "b-v0", "c-v0", "d-v0"]),
            10_000_000,
        );
        assert_eq!(got, vec![Some(2), None, Some(2), None]);
    }

    #[test]
    fn bandwidth_goes_to_the_base_layers_first_then_upgrades_by_rank() {
        let c = Constraints {
            on_stage: vec!["b-v0".into()],
            ..Default::default()
        };
        // 150k + 150k base, then b (on stage) upgrades within 900k: 360p (500k) fits.
        let got = allocate(&c, &candidates(&["a-v0", "b-v0"]), 900_000);
        assert_eq!(got, vec![Some(0), Some(1)]);
        // Not even two base layers: only the top-ranked one.
        assert_eq!(
            allocate(&c, &candidates(&["a-v0", "b-v0"]), 200_000),
            vec![None, Some(0)]
        );
    }

    #[test]
    fn a_limit_below_every_svc_layer_keeps_the_lowest_spatial_layers_frame_rate() {
        // L2T3: (360p, 720p) × three temporal layers.
        let layer = |height, bitrate_bps| Layer {
            height,
            bitrate_bps,
            active: true,
        };
        let svc = [
            layer(360, 120_000),
            layer(360, 240_000),
            layer(360, 480_000),
            layer(720, 360_000),
            layer(720, 720_000),
            layer(720, 1_440_000),
        ];
        let mut c = Constraints {
            default_max_height: 180,
            ..Default::default()
        };
        let candidates = [Candidate {
            name: "a-v0",
            speaker_rank: 0,
            layers: &svc,
        }];
        assert_eq!(allocate(&c, &candidates, 10_000_000), vec![Some(2)]);
        assert_eq!(allocate(&c, &candidates, 300_000), vec![Some(1)]);
        c.default_max_height = -1;
        assert_eq!(allocate(&c, &candidates, 1_000_000), vec![Some(4)]);
    }

    #[test]
    fn inactive_layers_are_skipped() {
        let layers = [
            SIMULCAST[0],
            SIMULCAST[1],
            Layer {
                active: false,
                ..SIMULCAST[2]
            },
        ];
        let c = [Candidate {
            name: "a-v0",
            speaker_rank: 0,
            layers: &layers,
        }];
        assert_eq!(
            allocate(&Constraints::default(), &c, 10_000_000),
            vec![Some(1)]
        );
    }
}
