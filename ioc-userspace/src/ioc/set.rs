//! The loaded indicator set: de-duplicated, with ids the kernel reports.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{IocValue, ParsedIndicator};

/// Id of an indicator in the kernel maps. Stable across reloads for the same value, and
/// never reused for another value, so an event in flight during a reload still names the
/// indicator it matched.
pub type KernelId = u32;

/// Hands out kernel ids.
#[derive(Debug, Default)]
pub struct IdAllocator {
    ids: HashMap<IocValue, KernelId>,
    next: KernelId,
}

impl IdAllocator {
    pub fn id_for(&mut self, value: &IocValue) -> KernelId {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        self.next = self.next.wrapping_add(1).max(1);
        self.ids.insert(value.clone(), self.next);
        self.next
    }

    /// Gives `values` the ids they had before (in a previous agent); later new values get
    /// ids above all of them. Returns how many were taken over.
    pub fn seed(&mut self, values: impl IntoIterator<Item = (IocValue, KernelId)>) -> usize {
        let mut seeded = 0;
        for (value, id) in values {
            if id == 0 {
                continue;
            }
            self.next = self.next.max(id);
            self.ids.insert(value, id);
            seeded += 1;
        }
        seeded
    }

    /// Forgets values no longer loaded (their ids are not reused).
    pub fn retain(&mut self, live: &HashSet<&IocValue>) {
        self.ids.retain(|value, _| live.contains(value));
    }
}

/// Counts by type, threat type and malware family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub total: usize,
    pub by_type: BTreeMap<&'static str, usize>,
    pub by_threat_type: BTreeMap<String, usize>,
    pub by_malware: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Default)]
pub struct IocSet {
    entries: Vec<ParsedIndicator>,
    ids: Vec<KernelId>,
    index: HashMap<KernelId, usize>,
}

/// How much an entry knows, to keep the richest of duplicates.
fn richness(indicator: &ParsedIndicator) -> usize {
    let meta = &indicator.meta;
    [
        meta.threat_type.is_some(),
        meta.malware.is_some(),
        meta.confidence.is_some(),
        meta.first_seen.is_some(),
        meta.last_seen.is_some(),
        meta.reference.is_some(),
        !meta.tags.is_empty(),
        meta.reporter.is_some(),
    ]
    .iter()
    .filter(|known| **known)
    .count()
}

impl IocSet {
    /// De-duplicates by value (keeping the entry with the most metadata; the first of
    /// equals) and assigns kernel ids.
    pub fn build(indicators: Vec<ParsedIndicator>, ids: &mut IdAllocator) -> Self {
        let mut position: HashMap<IocValue, usize> = HashMap::with_capacity(indicators.len());
        let mut entries: Vec<ParsedIndicator> = Vec::with_capacity(indicators.len());
        for indicator in indicators {
            match position.get(&indicator.value) {
                Some(&at) => {
                    if richness(&indicator) > richness(&entries[at]) {
                        entries[at] = indicator;
                    }
                }
                None => {
                    position.insert(indicator.value.clone(), entries.len());
                    entries.push(indicator);
                }
            }
        }
        let live: HashSet<&IocValue> = entries.iter().map(|e| &e.value).collect();
        ids.retain(&live);
        let kernel_ids: Vec<KernelId> = entries.iter().map(|e| ids.id_for(&e.value)).collect();
        let index = kernel_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i))
            .collect();
        Self {
            entries,
            ids: kernel_ids,
            index,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries whose ids `newer` does not have.
    pub fn removed_in(self, newer: &IocSet) -> IocSet {
        let (ids, entries): (Vec<KernelId>, Vec<ParsedIndicator>) = self
            .ids
            .into_iter()
            .zip(self.entries)
            .filter(|(id, _)| !newer.index.contains_key(id))
            .unzip();
        let index = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        IocSet {
            entries,
            ids,
            index,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The indicator the kernel reported as `id`.
    pub fn get(&self, id: KernelId) -> Option<&ParsedIndicator> {
        self.index.get(&id).map(|&i| &self.entries[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = (KernelId, &ParsedIndicator)> {
        self.ids.iter().copied().zip(self.entries.iter())
    }

    pub fn summary(&self) -> Summary {
        let mut summary = Summary {
            total: self.entries.len(),
            ..Summary::default()
        };
        for entry in &self.entries {
            *summary.by_type.entry(entry.value.type_name()).or_default() += 1;
            if let Some(threat) = &entry.meta.threat_type {
                *summary
                    .by_threat_type
                    .entry(threat.to_string())
                    .or_default() += 1;
            }
            if let Some(malware) = &entry.meta.malware {
                let name = malware
                    .printable
                    .clone()
                    .or_else(|| malware.id.clone())
                    .unwrap_or_default();
                *summary.by_malware.entry(name).or_default() += 1;
            }
        }
        summary
    }
}

impl Summary {
    /// `3 ip:port, 1 domain` style text.
    pub fn types_text(&self) -> String {
        join_counts(self.by_type.iter().map(|(k, v)| (*k, *v)))
    }

    pub fn threat_types_text(&self) -> String {
        join_counts(self.by_threat_type.iter().map(|(k, v)| (k.as_str(), *v)))
    }

    pub fn malware_text(&self) -> String {
        join_counts(self.by_malware.iter().map(|(k, v)| (k.as_str(), *v)))
    }
}

fn join_counts<'a>(counts: impl Iterator<Item = (&'a str, usize)>) -> String {
    let parts: Vec<String> = counts.map(|(name, n)| format!("{n} {name}")).collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioc::network_indicator;

    #[test]
    fn dedup_keeps_richest_and_ids_are_stable_across_builds() {
        let plain = network_indicator("127.0.0.2:4444", "a.txt", 1).unwrap();
        let mut rich = network_indicator("127.0.0.2:4444", "b.json", 7).unwrap();
        rich.meta.threat_type = Some("botnet_cc".into());
        let other = network_indicator("127.0.0.3", "a.txt", 2).unwrap();
        let mut ids = IdAllocator::default();
        let set = IocSet::build(vec![plain.clone(), other.clone(), rich.clone()], &mut ids);
        assert_eq!(set.len(), 2);
        let (endpoint_id, kept) = set.iter().next().unwrap();
        assert_eq!(kept.meta.threat_type.as_deref(), Some("botnet_cc"));
        assert_eq!(set.summary().types_text(), "1 ip, 1 ip:port");

        // Reload without 127.0.0.3, plus a new value: the endpoint keeps its id, the new
        // value gets a fresh one, the removed one's id is not reused.
        let removed_id = set.iter().nth(1).unwrap().0;
        let added = network_indicator("127.0.0.4", "a.txt", 3).unwrap();
        let again = IocSet::build(vec![added, plain], &mut ids);
        let again_ids: HashMap<String, KernelId> = again
            .iter()
            .map(|(id, i)| (i.value.to_string(), id))
            .collect();
        assert_eq!(again_ids["127.0.0.2:4444"], endpoint_id);
        assert_ne!(again_ids["127.0.0.4"], removed_id);
        assert!(again.get(removed_id).is_none());

        // What a reload keeps of the old set for events in flight: only the removed one.
        let kept = set.removed_in(&again);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept.get(removed_id).unwrap().value.to_string(), "127.0.0.3");
        assert!(kept.get(endpoint_id).is_none());
    }
}
