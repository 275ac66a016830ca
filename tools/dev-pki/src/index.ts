/**
 * @packageDocumentation
 * Certificate issuing for dev networks and tests: a network certificate
 * authority signing node and manager certificates whose only identity is a
 * SPIFFE URI SAN, and the CSR checks a CA makes. A development tool: a node
 * never issues certificates, so no package the node ships depends on it
 * (basic-net keeps what a node needs: key, CSR creation, certificate parsing
 * and verification).
 */
export { CertificateAuthority, parseCsr, type ParsedCsr, type IssueOptions } from './ca.js'
