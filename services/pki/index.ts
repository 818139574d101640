// services/pki: the cluster CA, the certificates it issues (masters, admin,
// nodes), bearer tokens and their file, and `mast init`, which writes them all.
// Imports no other module of ours.

export { CertificateError, createCertificateAuthority, issueCertificate, issueNodeCredentials, randomToken } from './certificates.js';
export type { CertificateAuthorityOptions, CertificateUsage, IssueOptions, KeyPairPem } from './certificates.js';
export { InitError, initCluster } from './init.js';
export type { InitOptions, InitResult, MasterFiles, MasterSpec } from './init.js';
export { TokenFileError, formatTokenFile, parseTokenFile } from './tokens.js';
export type { TokenEntry, TokenUser } from './tokens.js';
