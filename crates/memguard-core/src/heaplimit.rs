//! The heap limit that counts. V8's `heap_size_limit` is the old
//! generation's limit (what `--max-old-space-size` sets, where V8 runs out of
//! memory) plus a reserve for the young generation — 48 MiB on Node 20 and
//! 22, 192 MiB on Node 24, 96 MiB on Node 26. Heap used after a mark-compact
//! is old generation, so fractions and plans are taken of the old
//! generation's limit: of `heap_size_limit`, `0.3` on Node 26 with a 48 MiB
//! old space would be 45 MB, the end itself, and `0.9` of a 256 MiB old
//! space on Node 24 would never be reached.

const MIB: f64 = (1u64 << 20) as f64;

/// Where the young generation's size comes from, most specific first.
#[derive(Debug, Clone, Copy, Default)]
pub struct YoungGeneration {
    /// A worker's `resourceLimits.maxYoungGenerationSizeMb` (0: not a worker).
    pub worker_mb: f64,
    /// Node's `--max-semi-space-size` in MiB, from the command line or
    /// NODE_OPTIONS (0: not given). V8 reserves three semi-spaces.
    pub semi_space_flag_mb: f64,
}

impl YoungGeneration {
    /// The reserve in bytes; `default` (what V8 configures for this
    /// machine's memory, which reads /proc) is asked only when nothing more
    /// specific is known.
    pub fn bytes(&self, default: impl FnOnce() -> u64) -> u64 {
        if self.worker_mb > 0.0 {
            (self.worker_mb * MIB) as u64
        } else if self.semi_space_flag_mb > 0.0 {
            (3.0 * self.semi_space_flag_mb * MIB) as u64
        } else {
            default()
        }
    }
}

/// The old generation's limit: `heap_size_limit` less the young reserve, or
/// `heap_size_limit` itself when the reserve is unknown or makes no sense.
pub fn old_generation_limit(heap_size_limit: u64, young_bytes: u64) -> u64 {
    match heap_size_limit.checked_sub(young_bytes) {
        Some(old) if old >= 1 << 20 => old,
        _ => heap_size_limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const MB: u64 = 1 << 20;

    fn default(young_mb: u64) -> u64 {
        YoungGeneration::default().bytes(|| young_mb * MB)
    }

    #[test]
    fn each_node_line_gives_back_its_max_old_space_size() {
        // heap_size_limit measured with --max-old-space-size=48 and 2048.
        for (limit, young) in [(96, 48), (240, 192), (144, 96), (2096, 48), (2240, 192), (2144, 96)] {
            let old = old_generation_limit(limit * MB, default(young));
            assert!(old == 48 * MB || old == 2048 * MB, "{limit} - {young} -> {old}");
        }
    }

    #[test]
    fn the_semi_space_flag_replaces_the_default() {
        // Node 26, --max-semi-space-size=64 --max-old-space-size=512: 704 MiB.
        let young = YoungGeneration { semi_space_flag_mb: 64.0, ..Default::default() };
        assert_eq!(old_generation_limit(704 * MB, young.bytes(|| 96 * MB)), 512 * MB);
    }

    #[test]
    fn a_worker_s_own_young_generation_comes_first() {
        let young = YoungGeneration { worker_mb: 8.0, semi_space_flag_mb: 64.0 };
        assert_eq!(old_generation_limit(40 * MB, young.bytes(|| unreachable!())), 32 * MB);
    }

    #[test]
    fn an_unknown_or_impossible_reserve_keeps_v8_s_limit() {
        assert_eq!(old_generation_limit(100 * MB, default(0)), 100 * MB);
        assert_eq!(old_generation_limit(100 * MB, default(100)), 100 * MB);
        assert_eq!(old_generation_limit(100 * MB, default(300)), 100 * MB);
    }
}
