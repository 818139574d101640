// Durable Raft storage: the log, hard state and snapshots of one member.
export { LevelRaftStorage, StorageCorruption, type PersistUpdate, type StoredState } from './level-storage.js';
export { ChecksumMismatch } from './records.js';
