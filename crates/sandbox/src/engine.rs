//! The one wasmtime `Engine` a host uses, and the ticker that drives its epochs.

use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A CPU-bound guest is checked against its deadline (and
/// yields to other tasks) this often.
pub const TICK: Duration = Duration::from_millis(10);

/// Instance slots whose memory is returned to the OS together.
const DECOMMIT_BATCH: usize = 16;

/// Bytes of each table slot cleared in place rather than returned to the OS.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Instances the pool keeps room for at once (concurrent calls, nested tool calls included).
const POOL_INSTANCES: u32 = 256;

/// The instance pool every Baton engine uses (public so benchmarks can build a raw wasmtime
/// engine on the same allocator).
pub fn pooling_config() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 8)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 8)
        .total_stacks(POOL_INSTANCES)
        .max_core_instances_per_component(16)
        .max_memories_per_component(4)
        .max_tables_per_component(16)
        // Returning an instance's memory to the OS interrupts every other core running one
        // of our threads (a TLB shootdown); batching decommits pays that once per batch.
        .decommit_batch_size(DECOMMIT_BATCH)
        // Tables are small: clearing them in place is cheaper than decommitting them and
        // taking a page fault (a possible shootdown) on the next instance's first use.
        .table_keep_resident(TABLE_KEEP_RESIDENT);
    pool
}

pub fn build_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config()))
        .consume_fuel(true)
        .epoch_interruption(true)
        // Same results on every machine: replay depends on it.
        .cranelift_nan_canonicalization(true)
        .relaxed_simd_deterministic(true);
    Engine::new(&config)
}

/// Advances the engine's epoch every `TICK` until the engine is dropped.
pub struct EpochTicker {
    _thread: JoinHandle<()>,
}

impl EpochTicker {
    pub fn start(engine: EngineWeak) -> std::io::Result<Self> {
        let thread = std::thread::Builder::new()
            .name("baton-epoch".into())
            .spawn(move || {
                while let Some(engine) = engine.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })?;
        Ok(Self { _thread: thread })
    }
}
