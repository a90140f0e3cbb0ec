/** Settings resolved from the MEMGUARD* environment variables. */
export interface MemguardConfig {
  /** `MEMGUARD`: false when set to 0/off/false/no. */
  enabled: boolean
  /** `MEMGUARD_DIR`: absolute path of the directory that holds bundles. */
  dir: string
  /** `MEMGUARD_NEAR_LIMIT_SNAPSHOTS`: snapshots to write near the heap limit (0 = none). */
  nearLimitSnapshots: number
  /** `MEMGUARD_LOG`. */
  log: 'silent' | 'info' | 'debug'
}

/** `v8.HeapStatistics` (bytes, except the two context counts). */
export interface HeapStats {
  totalHeapSize: number
  totalHeapSizeExecutable: number
  totalPhysicalSize: number
  totalAvailableSize: number
  usedHeapSize: number
  heapSizeLimit: number
  mallocedMemory: number
  peakMallocedMemory: number
  externalMemory: number
  numberOfNativeContexts: number
  numberOfDetachedContexts: number
  totalGlobalHandlesSize: number
  usedGlobalHandlesSize: number
}

/** `v8.HeapSpaceStatistics` of one space (bytes). */
export interface SpaceStats {
  spaceName: string
  spaceSize: number
  spaceUsedSize: number
  spaceAvailableSize: number
  physicalSpaceSize: number
}

export interface Memguard {
  /** True while memguard guards this thread (false when disabled or the binary could not load). */
  readonly active: boolean
  /** This thread's bundle directory; created when the first artifact is written. */
  readonly bundleDir: string | null
  /** The resolved settings (null when the binary could not load). */
  readonly config: MemguardConfig | null
  /**
   * Writes a gzip-compressed heap snapshot into the bundle now and returns its path.
   * Blocks this thread while V8 takes the snapshot. Returns null when memguard is
   * inactive; throws when the snapshot could not be written.
   */
  snapshot(reason?: string): string | null
  /** Heap statistics and per-space statistics of this thread's isolate. */
  stats(): { heap: HeapStats; spaces: SpaceStats[] } | null
  /** Stops guarding this thread: the near-heap-limit hook is removed. */
  stop(): void
}

declare const memguard: Memguard
export = memguard
