//! The budget ledger: tokens, money, fuel and calls a run (and each of its steps) may spend,
//! and the wall time it may take.
//!
//! Spending is two-phase. Before an effect the worst case is *reserved*; after it the actual
//! use is *committed* and the rest released (dropping a `Hold` releases all of it). A
//! reservation succeeds only if the committed spend, everything already reserved, and the
//! new worst case together fit every limit, so concurrent steps can never overspend: the
//! check and the reservation happen under one lock. A step's ledger has the run's as its
//! parent, and a reservation must fit both.
//!
//! A run whose steps run on several hosts keeps its budget in a shared [`Account`] (a row in
//! PostgreSQL): the run's ledger on each host sits inside it, and a reservation must fit the
//! account too, checked and taken there atomically.

mod amounts;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use amounts::{BudgetLimits, Spend, Usd};

/// A reservation that did not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {scope}'s budget cannot cover this: {what} (budget.{key}); {}", self.remedy())]
pub struct Exceeded {
    /// "run" or "step 'name'".
    pub scope: String,
    /// Which limit: tokens, usd, fuel, calls, time.
    pub key: &'static str,
    pub what: String,
    /// Where the limit is raised, when not with --budget or the policy's [budget].
    pub raise: Option<String>,
}

impl Exceeded {
    fn remedy(&self) -> String {
        match &self.raise {
            Some(raise) => format!("raise it in {raise}"),
            None => format!(
                "raise it with --budget {}=... or in the policy's [budget]",
                self.key
            ),
        }
    }
}

/// A budget kept outside this process and shared by every host spending from it. A
/// reservation is checked and taken atomically there; each returns a hold that `settle`
/// later commits.
pub trait Account: Send + Sync + fmt::Debug {
    /// Reserves `want`, or says which limit it does not fit.
    fn reserve(&self, want: Spend) -> Result<HoldId, Exceeded>;
    /// Commits `actual` for the hold and releases the rest of it.
    fn settle(&self, hold: HoldId, actual: Spend);
    /// The shared ledger's name, as every host knows it.
    fn id(&self) -> &str;
}

/// A reservation an [`Account`] holds.
pub type HoldId = i64;

#[derive(Debug, Default)]
struct Tally {
    committed: Spend,
    reserved: Spend,
    /// Completions the cache answered (they spend nothing).
    cache_hits: u64,
    /// Those of them its semantic tier answered.
    semantic_hits: u64,
    /// Decisions made because of the budget that the run's report must mention.
    notes: Vec<String>,
}

/// The spend of one run or step against its limits.
#[derive(Debug)]
pub struct Ledger {
    scope: String,
    limits: BudgetLimits,
    started: Instant,
    parent: Option<Arc<Ledger>>,
    /// The shared account the run's ledger sits inside, if any.
    account: Option<Arc<dyn Account>>,
    /// Where its limits are raised, when not with --budget or the policy's [budget].
    raise: Option<String>,
    tally: Mutex<Tally>,
}

/// What a ledger has spent and has left, for summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetReport {
    pub limits: BudgetLimits,
    pub spent: Spend,
    pub elapsed: Duration,
    /// Completions the cache answered.
    pub cache_hits: u64,
    /// Those of them the semantic tier answered.
    pub semantic_hits: u64,
}

impl Ledger {
    /// A run's ledger.
    pub fn run(limits: BudgetLimits) -> Arc<Self> {
        Arc::new(Self::new("run".into(), limits, None))
    }

    /// A run's ledger, inside an account's (an API key's) when there is one: what the run
    /// spends then counts against both.
    pub fn run_for(limits: BudgetLimits, account: Option<&Arc<Ledger>>) -> Arc<Self> {
        Arc::new(Self::new("run".into(), limits, account.cloned()))
    }

    /// A long-lived ledger named `scope` (such as "key 'ci'") that has already spent
    /// `spent`: the runs it pays for are opened with `run_within`.
    pub fn account(scope: String, limits: BudgetLimits, spent: Spend) -> Arc<Self> {
        let ledger = Self::new(scope, limits, None);
        ledger.lock().committed = spent;
        Arc::new(ledger)
    }

    /// A long-lived ledger named `scope` (such as an API key's) whose budget is also kept in
    /// the shared `account`, inside `parent` if any: every reservation is taken there too,
    /// so that hosts spending from it at once never overspend it.
    pub fn account_in(
        scope: String,
        limits: BudgetLimits,
        spent: Spend,
        account: Arc<dyn Account>,
        parent: Option<Arc<Ledger>>,
    ) -> Arc<Self> {
        let mut ledger = Self::new(scope, limits, parent);
        ledger
            .tally
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .committed = spent;
        ledger.account = Some(account);
        Arc::new(ledger)
    }

    /// The names of the shared accounts above this ledger (in its ancestors), nearest first:
    /// what a host running part of its work elsewhere must reserve in too.
    pub fn accounts_above(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut ledger = self.parent.as_deref();
        while let Some(current) = ledger {
            found.extend(current.account.as_ref().map(|a| a.id().to_owned()));
            ledger = current.parent.as_deref();
        }
        found
    }

    /// A run's ledger (with `limits` of its own) inside a shared `account`: a reservation
    /// must fit both.
    pub fn run_within(limits: BudgetLimits, account: Arc<dyn Account>) -> Arc<Self> {
        Self::run_within_for(limits, account, None)
    }

    /// `run_within`, and inside an API key's ledger too when there is one (see `run_for`).
    pub fn run_within_for(
        limits: BudgetLimits,
        account: Arc<dyn Account>,
        key: Option<&Arc<Ledger>>,
    ) -> Arc<Self> {
        let mut ledger = Self::new("run".into(), limits, key.cloned());
        ledger.account = Some(account);
        Arc::new(ledger)
    }

    /// Counts `spent` as committed here and in every ancestor, without a reservation or a
    /// limit check: spend a step made on another host, already checked and committed in the
    /// shared account (which is not told again).
    pub fn absorb(&self, spent: Spend, cache_hits: u64, semantic_hits: u64) {
        let mut ledger = Some(self);
        while let Some(current) = ledger {
            let mut tally = current.lock();
            tally.committed = tally.committed.plus(spent);
            tally.cache_hits += cache_hits;
            tally.semantic_hits += semantic_hits;
            drop(tally);
            ledger = current.parent.as_deref();
        }
    }

    /// A step's ledger inside `run`'s.
    pub fn step(run: &Arc<Ledger>, step: &str, limits: BudgetLimits) -> Arc<Self> {
        Arc::new(Self::new(
            format!("step '{step}'"),
            limits,
            Some(run.clone()),
        ))
    }

    /// A step's ledger inside `run`'s with the limits its workflow gives it (`[steps.ID]
    /// budget`), as well as any its policy gives its tool; `None` when the workflow sets none.
    pub fn workflow_step(run: &Arc<Ledger>, step: &str, limits: BudgetLimits) -> Option<Arc<Self>> {
        if limits.is_unlimited() {
            return None;
        }
        let mut ledger = Self::new(format!("step '{step}'"), limits, Some(run.clone()));
        ledger.raise = Some(format!("the workflow's [steps.{step}] budget"));
        Some(Arc::new(ledger))
    }

    fn new(scope: String, limits: BudgetLimits, parent: Option<Arc<Ledger>>) -> Self {
        Self {
            scope,
            limits,
            started: Instant::now(),
            parent,
            account: None,
            raise: None,
            tally: Mutex::new(Tally::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a decision the budget made (a cheaper model chosen in place of another) here and
    /// in every ancestor, so that the step's and the run's reports mention it.
    pub fn note(&self, text: String) {
        let mut ledger = Some(self);
        while let Some(current) = ledger {
            let mut tally = current.lock();
            if !tally.notes.contains(&text) {
                tally.notes.push(text.clone());
            }
            drop(tally);
            ledger = current.parent.as_deref();
        }
    }

    /// The decisions noted here, in order.
    pub fn notes(&self) -> Vec<String> {
        self.lock().notes.clone()
    }

    /// Reserves `want` here and in every ancestor, or nothing if any of them cannot cover it.
    pub fn reserve(self: &Arc<Self>, want: Spend) -> Result<Hold, Exceeded> {
        // Locks are taken from the step up to the run, always in that order.
        let mut chain: Vec<&Ledger> = vec![self];
        while let Some(parent) = &chain[chain.len() - 1].parent {
            chain.push(parent);
        }
        let mut guards: Vec<MutexGuard<'_, Tally>> = Vec::with_capacity(chain.len());
        for ledger in &chain {
            let guard = ledger.lock();
            ledger.check(&guard, want)?;
            guards.push(guard);
        }
        // The shared accounts are asked last, under the local locks, nearest first: what
        // they all grant is then reserved here too, or what some granted is given back.
        let mut shared = Vec::new();
        if want != Spend::default() {
            for account in chain.iter().filter_map(|l| l.account.as_ref()) {
                match account.reserve(want) {
                    Ok(hold) => shared.push(hold),
                    Err(refused) => {
                        let granted = chain.iter().filter_map(|l| l.account.as_ref());
                        for (account, hold) in granted.zip(shared) {
                            account.settle(hold, Spend::default());
                        }
                        return Err(refused);
                    }
                }
            }
        }
        for guard in &mut guards {
            guard.reserved = guard.reserved.plus(want);
        }
        drop(guards);
        Ok(Hold {
            ledger: self.clone(),
            held: want,
            shared,
            settled: false,
        })
    }

    fn check(&self, tally: &Tally, want: Spend) -> Result<(), Exceeded> {
        let exceeded = |key, what| Exceeded {
            scope: self.scope.clone(),
            key,
            what,
            raise: self.raise.clone(),
        };
        if let Some(limit) = self.limits.time {
            let elapsed = self.started.elapsed();
            if elapsed >= limit {
                return Err(exceeded(
                    "time",
                    format!(
                        "{} of {} used",
                        humantime::format_duration(round_ms(elapsed)),
                        humantime::format_duration(limit)
                    ),
                ));
            }
        }
        let total = tally.committed.plus(tally.reserved);
        let counts = [
            ("tokens", self.limits.tokens, total.tokens, want.tokens),
            ("fuel", self.limits.fuel, total.fuel, want.fuel),
            ("calls", self.limits.calls, total.calls, want.calls),
        ];
        for (key, limit, used, wanted) in counts {
            if let Some(limit) = limit
                && wanted > 0
                && used.saturating_add(wanted) > limit
            {
                return Err(exceeded(
                    key,
                    format!(
                        "{} needed, {used} of {limit} spent or reserved",
                        amount(wanted, key)
                    ),
                ));
            }
        }
        if let Some(limit) = self.limits.usd
            && want.usd.0 > 0
            && total.usd.0.saturating_add(want.usd.0) > limit.0
        {
            return Err(exceeded(
                "usd",
                format!(
                    "{} needed, {} of {} spent or reserved",
                    want.usd, total.usd, limit
                ),
            ));
        }
        Ok(())
    }

    /// Fuel left to reserve here and in every ancestor (a call is granted up to what is
    /// left, rather than refused whole).
    pub fn fuel_left(&self) -> Option<u64> {
        let mut left = self.limits.fuel.map(|limit| {
            let tally = self.lock();
            limit.saturating_sub(tally.committed.fuel + tally.reserved.fuel)
        });
        if let Some(parent) = &self.parent
            && let Some(up) = parent.fuel_left()
        {
            left = Some(left.map_or(up, |l| l.min(up)));
        }
        left
    }

    /// Wall time left before the run's or step's time budget runs out.
    pub fn time_left(&self) -> Option<Duration> {
        let mine = self
            .limits
            .time
            .map(|limit| limit.saturating_sub(self.started.elapsed()));
        let up = self.parent.as_ref().and_then(|p| p.time_left());
        match (mine, up) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn report(&self) -> BudgetReport {
        let tally = self.lock();
        BudgetReport {
            limits: self.limits,
            spent: tally.committed,
            elapsed: self.started.elapsed(),
            cache_hits: tally.cache_hits,
            semantic_hits: tally.semantic_hits,
        }
    }

    /// Counts a completion the cache answered (by its semantic tier or not), here and in
    /// every ancestor.
    pub fn note_cache_hit(&self, semantic: bool) {
        let mut ledger = Some(self);
        while let Some(current) = ledger {
            let mut tally = current.lock();
            tally.cache_hits += 1;
            tally.semantic_hits += u64::from(semantic);
            drop(tally);
            ledger = current.parent.as_deref();
        }
    }

    /// Settles a hold here and in every ancestor; `shared` are the holds of the shared
    /// accounts on the way, nearest first.
    fn settle(&self, held: Spend, actual: Spend, shared: &[HoldId]) {
        let mut shared = shared.iter();
        let mut ledger = Some(self);
        while let Some(current) = ledger {
            let mut tally = current.lock();
            tally.reserved = tally.reserved.minus(held);
            tally.committed = tally.committed.plus(actual);
            drop(tally);
            if let Some(account) = &current.account
                && let Some(hold) = shared.next()
            {
                account.settle(*hold, actual);
            }
            ledger = current.parent.as_deref();
        }
    }
}

/// `n` of the limit `key` ("1 call", "3 calls", "1 token", "500 fuel").
pub fn amount(n: u64, key: &str) -> String {
    match (n, key.strip_suffix('s')) {
        (1, Some(one)) => format!("1 {one}"),
        _ => format!("{n} {key}"),
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// A reservation: commit what was actually spent, or drop it to release everything.
#[derive(Debug)]
pub struct Hold {
    ledger: Arc<Ledger>,
    held: Spend,
    /// The holds of the shared accounts the ledger sits inside, nearest first.
    shared: Vec<HoldId>,
    settled: bool,
}

impl Hold {
    pub fn held(&self) -> Spend {
        self.held
    }

    /// The ledger it holds spend in.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Records `actual` as spent and releases the rest of the reservation.
    pub fn commit(mut self, actual: Spend) {
        self.settled = true;
        self.ledger.settle(self.held, actual, &self.shared);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.settled {
            self.ledger
                .settle(self.held, Spend::default(), &self.shared);
        }
    }
}

impl fmt::Display for BudgetReport {
    /// "2 LLM calls, 1234 tokens, $0.0012; budget left: 18766 tokens, $0.0988".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.spent;
        let plural = if s.calls == 1 { "" } else { "s" };
        write!(
            f,
            "{} LLM call{plural}, {} tokens, {}",
            s.calls, s.tokens, s.usd
        )?;
        match self.cache_hits {
            0 => {}
            1 => write!(f, ", 1 cache hit")?,
            n => write!(f, ", {n} cache hits")?,
        }
        let l = &self.limits;
        let mut left = Vec::new();
        if let Some(limit) = l.tokens {
            left.push(format!("{} tokens", limit.saturating_sub(s.tokens)));
        }
        if let Some(limit) = l.usd {
            left.push(Usd(limit.0.saturating_sub(s.usd.0)).to_string());
        }
        if let Some(limit) = l.calls {
            left.push(format!("{} calls", limit.saturating_sub(s.calls)));
        }
        if let Some(limit) = l.fuel {
            left.push(format!("{} fuel", limit.saturating_sub(s.fuel)));
        }
        if let Some(limit) = l.time {
            let left_time = limit.saturating_sub(self.elapsed);
            left.push(format!(
                "{} time",
                humantime::format_duration(round_ms(left_time))
            ));
        }
        if !left.is_empty() {
            write!(f, "; budget left: {}", left.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
