// The protocol's public surface: sessions, the circuit lock, the fenced write path, the key
// layout and the few reads the services and tools need. Nothing else of lib/etcd is used outside it.
export { createEtcd, deadline } from './client.js';
export { etcdFailure, isCompacted } from './failures.js';
export { Session } from './session.js';
export { acquire, acquireOrServed, withLock, Lock, decodeLockValue, type Acquired, type AcquireOptions, type Fence, type LockKeyValue, type QueuedContender, type Served } from './mutex.js';
export { applyFenced, writerId, MAX_TXN_OPS, RESERVED_OPS, type ApplyInput, type ApplyResult } from './fenced-apply.js';
export { encodeMeta, decodeMeta, parseWriter, servedGeneration, type CircuitMeta, type SeenMeta } from './meta.js';
export { metaKey, metaCircuitsPrefix, lockPrefix, locksPrefix, epochKey, circuitOfMetaKey, parseLockKey } from './layout.js';
export { encodeEpoch, decodeEpoch, type EpochValue } from './epoch-codec.js';
export { readHistoryState, writeEpoch, type EtcdHistoryState } from './epoch.js';
export { scanPrefix, type ScanOptions, type ScanResult } from './scan.js';
export { readPrefixes, keysOf, readMeta, readAppliedGenerations, deleteIfUnchanged, deletePrefixesLocked, getOp, getPrefixOp } from './circuit-keys.js';
export { listLocks, type LockContender } from './locks.js';
export { pingEtcd } from './ping.js';
export { enc, prefixEnd, kvKey, kvValue } from './keys.js';
