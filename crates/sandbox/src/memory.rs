//! The memory limit: a `ResourceLimiter` that refuses growth past the limit with a typed
//! error (wasmtime's own `StoreLimits` reports refusals as untyped strings) and records the
//! peak.

use baton_core::limits::LimitExceeded;

#[derive(Debug)]
pub struct MemoryLimiter {
    limit: u64,
    /// Bytes currently held by all of the store's memories.
    total: u64,
    peak: u64,
}

impl MemoryLimiter {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            total: 0,
            peak: 0,
        }
    }

    /// Largest total the store's memories reached.
    pub fn peak(&self) -> u64 {
        self.peak
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total - current as u64 + desired as u64;
        if total > self.limit {
            return Err(wasmtime::Error::new(LimitExceeded::Memory {
                limit: self.limit,
                requested: total,
            }));
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn growth_is_summed_across_memories_and_refused_past_the_limit() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(0, 30, None).unwrap());
        let err = limiter.memory_growing(60, 80, None).unwrap_err();
        assert_eq!(
            err.downcast_ref::<LimitExceeded>(),
            Some(&LimitExceeded::Memory {
                limit: 100,
                requested: 110
            })
        );
        assert_eq!(limiter.peak(), 90);
    }
}
