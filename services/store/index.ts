// The replicated store of one master: Raft node, state machine, lessor.
export * from './etcd-convert.js';
export { Lessor, type LessorClock } from './lessor.js';
export { clusterIdOf, formatId, InitialClusterError, isMemberUrl, memberIdOf, parseInitialCluster } from './members.js';
export { addressOf } from '../../raft/transport/index.js';
export { REQUEST_ID_WINDOW, StoreStateMachine, type MemberInfo, type Outcome, type StateListener } from './state-machine.js';
export { ReplicatedStore, StoreError, type CommandOp, type StoreLogger, type StoreOptions } from './store.js';
export { Compactor, type CompactionMode, type CompactorOptions, type CompactorTarget } from './compactor.js';
