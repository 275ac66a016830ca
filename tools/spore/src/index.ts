/**
 * @packageDocumentation
 * Spore tooling for operators and for tools/dev-network: signing keys, trust
 * bundles, signing (here only — the node's packages are read-only), and the
 * `spore` CLI.
 */
export {
  generateSigningKey,
  loadPrivateKey,
  loadPublicKey,
  signingKeyFromPem,
  newSigningKey,
  publicSigningKey,
  type GeneratedKey,
  type PublicKeyFile,
  type SigningPrivateKey
} from './keys.js'
export { signSpore } from './sign.js'
export { parseSporeInput, parseTtl, type SporeInput } from './input.js'
export { runCli, buildProgram, type CliIo, EXIT_OK, EXIT_VERIFY_FAILED, EXIT_USAGE } from './cli.js'
