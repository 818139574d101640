// services/pki: the cluster CA, the certificates it issues (masters, admin,
// nodes), bearer tokens and their file, and `mast init`, which writes them all.
// Imports no other module of ours.

export { CertificateError, createCertificateAuthority, issueCertificate, issueNodeCredentials, randomToken } from './certificates.js';
export type { CertificateAuthorityOptions, CertificateUsage, IssueOptions, KeyPairPem } from './certificates.js';
export { InitError, initCluster } from './init.js';
export type { InitOptions, InitResult, MasterFiles, MasterSpec } from './init.js';
export { TokenFileError, formatTokenFile, parseTokenFile } from './tokens.js';
export type { TokenEntry, TokenUser } from './tokens.js';
export { caCertificateHash, createCertificateRequest, masterCertificateOptions, nodeCertificateOptions, signCertificateRequest } from './certificates.js';
export {
  BOOTSTRAPPERS_GROUP,
  BOOTSTRAP_TOKEN_NAMESPACE,
  BOOTSTRAP_TOKEN_TYPE,
  BOOTSTRAP_USER_PREFIX,
  JOIN_GROUPS,
  bootstrapTokenSecret,
  bootstrapTokenSecretName,
  formatBootstrapToken,
  joinRoleOf,
  newBootstrapToken,
  parseBootstrapToken,
  parseTokenTtl,
  readBootstrapTokenSecret,
} from './bootstrap-tokens.js';
export type { BootstrapToken, BootstrapTokenRecord, JoinRole } from './bootstrap-tokens.js';
