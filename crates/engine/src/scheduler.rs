//! Admission of task attempts: which waiting attempt runs next, on a shared executor, under
//! per-tenant quotas, fairly across tenants.
//!
//! Across tenants it is stride scheduling (a deterministic form of weighted fair queueing):
//! every tenant with waiting work has a *pass*; the next attempt comes from the tenant with the
//! lowest pass that can run, whose pass then grows by `STRIDE / weight`. A tenant that becomes
//! busy again starts at the current virtual time, so it gets its share at once but no credit
//! for the time it was idle. Inside a tenant: higher priority first, then first come first
//! served. A decision costs O(log tenants).
//!
//! Invariants: an attempt is granted only if its demand fits its tenant's remaining quota
//! (cpu, memory, running tasks) and a free executor slot — so a tenant's usage never exceeds
//! its quota; every grant is matched by exactly one [`Scheduler::release`]; a tenant blocked by
//! its quota leaves the run order until one of its own attempts ends or its quota changes, so
//! it never holds up other tenants.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

/// Pass added per grant to a tenant of weight 1.
const STRIDE: u64 = 1 << 20;

/// What one attempt needs while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

/// A tenant's limits on concurrent use (`None`: unlimited) and its fair-share weight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quota {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub running_tasks: Option<u64>,
    pub running_executions: Option<u64>,
    /// Relative share of contended capacity; at least 1.
    pub weight: u32,
}

impl Quota {
    /// Unlimited, with the weight of the default (`standard`) tier.
    pub fn unlimited() -> Quota {
        Quota { weight: tier_weight("standard"), ..Default::default() }
    }

    /// From the stored record; the weight defaults by tier (`basic` 1, `standard` 2,
    /// `premium` 4).
    pub fn from_record(r: &tf_store::QuotaRecord, tier: &str) -> Quota {
        let n = |v: Option<i64>| v.map(|x| x.max(0) as u64);
        Quota {
            cpu_millis: n(r.cpu_millis),
            memory_bytes: n(r.memory_bytes),
            running_tasks: n(r.running_tasks),
            running_executions: n(r.running_executions),
            weight: r.weight.map(|w| w.clamp(1, 1_000_000) as u32).unwrap_or_else(|| tier_weight(tier)),
        }
    }

    /// Why `demand` can never run for `tenant`: it exceeds the whole quota.
    pub fn oversize(&self, tenant: &str, demand: Demand) -> Option<String> {
        let q = self;
        if q.cpu_millis.is_some_and(|m| demand.cpu_millis > m) {
            return Some(format!(
                "requests cpu {} but the quota of tenant {tenant} is cpu {}",
                cpu(demand.cpu_millis),
                cpu(q.cpu_millis.unwrap_or(0))
            ));
        }
        if q.memory_bytes.is_some_and(|m| demand.memory_bytes > m) {
            return Some(format!(
                "requests memory {} but the quota of tenant {tenant} is memory {}",
                memory(demand.memory_bytes),
                memory(q.memory_bytes.unwrap_or(0))
            ));
        }
        if q.running_tasks == Some(0) {
            return Some(format!("the quota of tenant {tenant} allows no running tasks"));
        }
        None
    }
}

/// The fair-share weight of a tier when none is set.
pub fn tier_weight(tier: &str) -> u32 {
    match tier {
        "basic" | "free" => 1,
        "premium" | "enterprise" => 4,
        _ => 2,
    }
}

/// What a tenant's running attempts hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub tasks: u64,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Waiting {
    priority: i64,
    seq: Reverse<u64>,
    ticket: u64,
    demand: (u64, u64),
}

#[derive(Debug, Default)]
struct TenantQueue {
    quota: Quota,
    usage: Usage,
    pass: u64,
    queue: BinaryHeap<Waiting>,
    /// In `order` under this pass.
    listed: Option<u64>,
    /// Why the head attempt cannot run within the quota, while it cannot.
    blocked: Option<String>,
}

/// A busy tenant as [`Scheduler::load`] reports it: name, usage, attempts waiting, quota.
pub type TenantLoad = (String, Usage, u64, Quota);

/// The admission queue of one executor.
#[derive(Debug)]
pub struct Scheduler {
    slots: u64,
    busy: u64,
    tenants: HashMap<String, TenantQueue>,
    /// Tenants with waiting work that is not blocked by their quota, by pass.
    order: BTreeSet<(u64, String)>,
    /// Pass of the latest grant: where a tenant that becomes busy starts.
    vtime: u64,
    seq: u64,
    cancelled: HashSet<u64>,
    waiting: usize,
}

/// A decision: run `ticket` of `tenant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub tenant: String,
    pub ticket: u64,
    pub demand: Demand,
}

impl TenantQueue {
    /// Why `d` does not fit the remaining quota, if it does not.
    fn misfit(&self, tenant: &str, d: Demand) -> Option<String> {
        let q = &self.quota;
        let u = &self.usage;
        if let Some(max) = q.running_tasks {
            if u.tasks + 1 > max {
                return Some(format!("quota: tasks {}/{max} running (tenant {tenant})", u.tasks));
            }
        }
        if let Some(max) = q.cpu_millis {
            if u.cpu_millis + d.cpu_millis > max {
                return Some(format!(
                    "quota: cpu {}/{} in use, {} more needed (tenant {tenant})",
                    cpu(u.cpu_millis),
                    cpu(max),
                    cpu(d.cpu_millis)
                ));
            }
        }
        if let Some(max) = q.memory_bytes {
            if u.memory_bytes + d.memory_bytes > max {
                return Some(format!(
                    "quota: memory {}/{} in use, {} more needed (tenant {tenant})",
                    memory(u.memory_bytes),
                    memory(max),
                    memory(d.memory_bytes)
                ));
            }
        }
        None
    }

    fn head(&mut self, cancelled: &mut HashSet<u64>, waiting: &mut usize) -> Option<Demand> {
        while let Some(w) = self.queue.peek() {
            if cancelled.remove(&w.ticket) {
                self.queue.pop();
                *waiting -= 1;
                continue;
            }
            return Some(Demand { cpu_millis: w.demand.0, memory_bytes: w.demand.1 });
        }
        None
    }
}

/// `1500` millicores as `1.5`.
pub fn cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{}", millis as f64 / 1000.0)
    }
}

/// Bytes with a binary unit: `20Gi`, `512Mi`.
pub fn memory(bytes: u64) -> String {
    for (unit, size) in [("Ti", 1u64 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= size {
            let v = bytes as f64 / size as f64;
            return if v.fract() == 0.0 { format!("{v}{unit}") } else { format!("{v:.1}{unit}") };
        }
    }
    format!("{bytes}")
}

impl Scheduler {
    pub fn new(slots: usize) -> Scheduler {
        Scheduler {
            slots: slots.max(1) as u64,
            busy: 0,
            tenants: HashMap::new(),
            order: BTreeSet::new(),
            vtime: 0,
            seq: 0,
            cancelled: HashSet::new(),
            waiting: 0,
        }
    }

    fn tenant(&mut self, tenant: &str) -> &mut TenantQueue {
        if !self.tenants.contains_key(tenant) {
            let q = TenantQueue { quota: Quota::unlimited(), ..Default::default() };
            self.tenants.insert(tenant.to_string(), q);
        }
        self.tenants.get_mut(tenant).expect("inserted")
    }

    /// Sets a tenant's quota and weight; waiting work it now admits becomes runnable.
    pub fn set_quota(&mut self, tenant: &str, quota: Quota) {
        let t = self.tenant(tenant);
        t.quota = Quota { weight: quota.weight.max(1), ..quota };
        t.blocked = None;
        self.relist(tenant);
    }

    pub fn quota(&self, tenant: &str) -> Quota {
        self.tenants.get(tenant).map(|t| t.quota.clone()).unwrap_or_else(Quota::unlimited)
    }

    /// Attempts of `tenant` waiting for admission.
    pub fn waiting_of(&self, tenant: &str) -> u64 {
        self.tenants.get(tenant).map(|t| t.queue.len() as u64).unwrap_or(0)
    }

    /// Slots in use, all slots, and every tenant with something running or waiting:
    /// `(tenant, usage, waiting, quota)`.
    pub fn load(&self) -> (u64, u64, Vec<TenantLoad>) {
        let busy: Vec<TenantLoad> = self
            .tenants
            .iter()
            .filter(|(_, t)| t.usage.tasks > 0 || !t.queue.is_empty())
            .map(|(n, t)| (n.clone(), t.usage, t.queue.len() as u64, t.quota.clone()))
            .collect();
        (self.busy, self.slots, busy)
    }

    pub fn usage(&self, tenant: &str) -> Usage {
        self.tenants.get(tenant).map(|t| t.usage).unwrap_or_default()
    }

    /// Puts an attempt in line. Grants come from [`Scheduler::next`].
    pub fn enqueue(&mut self, tenant: &str, ticket: u64, demand: Demand, priority: i64) {
        self.seq += 1;
        let seq = self.seq;
        self.waiting += 1;
        let t = self.tenant(tenant);
        t.queue.push(Waiting { priority, seq: Reverse(seq), ticket, demand: (demand.cpu_millis, demand.memory_bytes) });
        if t.listed.is_none() && t.blocked.is_none() {
            self.relist(tenant);
        }
    }

    /// Withdraws a waiting attempt (it was terminated before it ran).
    pub fn cancel(&mut self, ticket: u64) {
        self.cancelled.insert(ticket);
    }

    /// Why a waiting attempt of `tenant` with this demand has not started.
    pub fn why_waiting(&self, tenant: &str, demand: Demand) -> String {
        if let Some(t) = self.tenants.get(tenant) {
            if let Some(reason) = t.misfit(tenant, demand) {
                return reason;
            }
        }
        if self.busy >= self.slots {
            return format!("executor: {}/{} slots in use", self.busy, self.slots);
        }
        "queued: waiting for its turn among tenants".to_string()
    }

    /// The next attempt to start, if one can start now.
    pub fn next_grant(&mut self) -> Option<Grant> {
        while self.busy < self.slots {
            let (pass, name) = self.order.pop_first()?;
            let (cancelled, waiting) = (&mut self.cancelled, &mut self.waiting);
            let t = self.tenants.get_mut(&name).expect("listed tenants exist");
            t.listed = None;
            let Some(demand) = t.head(cancelled, waiting) else { continue };
            if let Some(reason) = t.misfit(&name, demand) {
                t.blocked = Some(reason);
                continue;
            }
            let w = t.queue.pop().expect("head exists");
            self.waiting -= 1;
            t.usage.cpu_millis += demand.cpu_millis;
            t.usage.memory_bytes += demand.memory_bytes;
            t.usage.tasks += 1;
            self.busy += 1;
            self.vtime = self.vtime.max(pass);
            t.pass = pass + STRIDE / u64::from(t.quota.weight.max(1));
            if !t.queue.is_empty() {
                t.listed = Some(t.pass);
                self.order.insert((t.pass, name.clone()));
            }
            return Some(Grant { tenant: name, ticket: w.ticket, demand });
        }
        None
    }

    /// A granted attempt ended: its slot and its share of the tenant's quota are free again.
    pub fn release(&mut self, tenant: &str, demand: Demand) {
        self.busy = self.busy.saturating_sub(1);
        let t = self.tenant(tenant);
        t.usage.cpu_millis = t.usage.cpu_millis.saturating_sub(demand.cpu_millis);
        t.usage.memory_bytes = t.usage.memory_bytes.saturating_sub(demand.memory_bytes);
        t.usage.tasks = t.usage.tasks.saturating_sub(1);
        t.blocked = None;
        self.relist(tenant);
    }

    /// Puts a tenant with waiting work back in the run order, starting no earlier than now.
    fn relist(&mut self, tenant: &str) {
        let vtime = self.vtime;
        let Some(t) = self.tenants.get_mut(tenant) else { return };
        if t.queue.is_empty() {
            return;
        }
        if let Some(p) = t.listed.take() {
            self.order.remove(&(p, tenant.to_string()));
        }
        t.pass = t.pass.max(vtime);
        t.listed = Some(t.pass);
        self.order.insert((t.pass, tenant.to_string()));
    }

    /// Attempts waiting (cancelled ones may still be counted until they reach a queue's head).
    pub fn waiting(&self) -> usize {
        self.waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(cpu: u64, mem: u64) -> Demand {
        Demand { cpu_millis: cpu, memory_bytes: mem }
    }

    /// A small deterministic generator, so failures replay.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn weighted_shares_under_contention() {
        let mut s = Scheduler::new(4);
        for (t, w) in [("a", 1), ("b", 1), ("c", 2)] {
            s.set_quota(t, Quota { weight: w, ..Default::default() });
        }
        let mut ticket = 0;
        for _ in 0..400 {
            for t in ["a", "b", "c"] {
                ticket += 1;
                s.enqueue(t, ticket, d(100, 1), 0);
            }
        }
        let mut count: HashMap<String, u32> = HashMap::new();
        let mut running: Vec<Grant> = Vec::new();
        for _ in 0..400 {
            while let Some(g) = s.next_grant() {
                running.push(g);
            }
            let g = running.remove(0);
            *count.entry(g.tenant.clone()).or_default() += 1;
            s.release(&g.tenant, g.demand);
        }
        assert_eq!((count["a"], count["b"], count["c"]), (100, 100, 200), "{count:?}");
    }

    #[test]
    fn a_late_tenant_gets_its_share_at_once_without_credit_for_idle_time() {
        let mut s = Scheduler::new(1);
        for i in 0..100 {
            s.enqueue("a", i, d(1, 1), 0);
        }
        for _ in 0..50 {
            let g = s.next_grant().unwrap();
            s.release(&g.tenant, g.demand);
        }
        for i in 100..200 {
            s.enqueue("b", i, d(1, 1), 0);
        }
        let mut order = String::new();
        for _ in 0..10 {
            let g = s.next_grant().unwrap();
            order.push_str(&g.tenant);
            s.release(&g.tenant, g.demand);
        }
        assert_eq!(order.matches('b').count(), 5, "{order}");
        assert!(order.starts_with("ab") || order.starts_with("ba"), "{order}");
    }

    #[test]
    fn priority_then_fifo_inside_a_tenant() {
        let mut s = Scheduler::new(1);
        s.enqueue("a", 1, d(1, 1), 0);
        s.enqueue("a", 2, d(1, 1), 5);
        s.enqueue("a", 3, d(1, 1), 0);
        let mut got = vec![];
        while let Some(g) = s.next_grant() {
            got.push(g.ticket);
            s.release(&g.tenant, g.demand);
        }
        assert_eq!(got, vec![2, 1, 3]);
    }

    #[test]
    fn blocked_tenants_wait_with_a_reason_and_do_not_hold_up_others() {
        let mut s = Scheduler::new(8);
        s.set_quota("alpha", Quota { cpu_millis: Some(10_000), weight: 1, ..Default::default() });
        for i in 0..12 {
            s.enqueue("alpha", i, d(1000, 0), 0);
        }
        s.enqueue("beta", 100, d(1000, 0), 0);
        let mut grants = vec![];
        while let Some(g) = s.next_grant() {
            grants.push(g);
        }
        assert_eq!(grants.len(), 8, "executor slots bound it");
        assert!(grants.iter().any(|g| g.tenant == "beta"));
        for g in grants.drain(..).filter(|g| g.tenant == "beta") {
            s.release(&g.tenant, g.demand);
        }
        while let Some(g) = s.next_grant() {
            grants.push(g);
        }
        assert_eq!(s.usage("alpha").cpu_millis, 8000);
        assert_eq!(s.why_waiting("alpha", d(3000, 0)), "quota: cpu 8/10 in use, 3 more needed (tenant alpha)");
        assert_eq!(
            s.quota("alpha").oversize("alpha", d(11_000, 0)).unwrap(),
            "requests cpu 11 but the quota of tenant alpha is cpu 10"
        );
    }

    #[test]
    fn cancelled_attempts_are_skipped() {
        let mut s = Scheduler::new(1);
        s.enqueue("a", 1, d(1, 1), 0);
        s.enqueue("a", 2, d(1, 1), 0);
        s.cancel(1);
        assert_eq!(s.next_grant().unwrap().ticket, 2);
        assert_eq!(s.waiting(), 0);
    }

    /// Property: under random arrivals, quotas, weights and completions, no tenant's running
    /// cpu, memory or task count ever exceeds its quota, the executor never runs more than its
    /// slots, nothing is granted twice, and all work is eventually granted.
    #[test]
    fn random_load_never_exceeds_quotas() {
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let slots = 1 + rng.below(8);
            let mut s = Scheduler::new(slots as usize);
            let tenants: Vec<String> = (0..1 + rng.below(6)).map(|i| format!("t{i}")).collect();
            let mut quotas = HashMap::new();
            for t in &tenants {
                let q = Quota {
                    cpu_millis: Some(1000 + rng.below(8) * 500),
                    memory_bytes: Some((1 + rng.below(8)) << 30),
                    running_tasks: Some(1 + rng.below(5)),
                    running_executions: None,
                    weight: 1 + rng.below(4) as u32,
                };
                s.set_quota(t, q.clone());
                quotas.insert(t.clone(), q);
            }
            let mut running: Vec<Grant> = Vec::new();
            let mut granted = HashSet::new();
            let (mut ticket, mut enqueued) = (0u64, 0usize);
            for _step in 0..2000 {
                if rng.below(3) > 0 {
                    let t = &tenants[rng.below(tenants.len() as u64) as usize];
                    let q = &quotas[t];
                    let demand = d(1 + rng.below(q.cpu_millis.unwrap()), 1 + rng.below(q.memory_bytes.unwrap()));
                    ticket += 1;
                    enqueued += 1;
                    s.enqueue(t, ticket, demand, rng.below(3) as i64);
                }
                if !running.is_empty() && rng.below(2) == 0 {
                    let g = running.swap_remove(rng.below(running.len() as u64) as usize);
                    s.release(&g.tenant, g.demand);
                }
                while let Some(g) = s.next_grant() {
                    assert!(granted.insert(g.ticket), "granted twice");
                    running.push(g);
                }
                assert!(running.len() as u64 <= slots);
                for t in &tenants {
                    let (q, u) = (&quotas[t], s.usage(t));
                    assert!(u.cpu_millis <= q.cpu_millis.unwrap(), "seed {seed}: cpu over quota");
                    assert!(u.memory_bytes <= q.memory_bytes.unwrap(), "seed {seed}: memory over quota");
                    assert!(u.tasks <= q.running_tasks.unwrap(), "seed {seed}: tasks over quota");
                    let held: u64 = running.iter().filter(|g| &g.tenant == t).map(|g| g.demand.cpu_millis).sum();
                    assert_eq!(held, u.cpu_millis, "usage matches what runs");
                }
            }
            // Drain: everything waiting is granted in the end.
            while !running.is_empty() || s.waiting() > 0 {
                if let Some(g) = running.pop() {
                    s.release(&g.tenant, g.demand);
                }
                while let Some(g) = s.next_grant() {
                    assert!(granted.insert(g.ticket));
                    running.push(g);
                }
            }
            assert_eq!(granted.len(), enqueued, "seed {seed}: nothing starves");
        }
    }
}
