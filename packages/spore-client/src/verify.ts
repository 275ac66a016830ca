import { createHash, verify as verifySignature } from 'node:crypto'
import { decodeStrict, readWireFields, SignedSpore, Spore, Timestamp, timestampProblem } from '@mycelium/core-interfaces'
import {
  DuplicateSporeSignatureError,
  ExpiredSporeError,
  InsufficientSporeSignaturesError,
  InvalidSporeSignatureError,
  MalformedSporeError,
  NotYetValidSporeError,
  SporeEquivocationError,
  SporeRollbackError,
  UnknownSporeKeyError,
  WrongNetworkSporeError
} from './errors.js'
import type { TrustedKeys } from './trust.js'

/** The highest sequence trusted for a name, and a digest of its bytes. */
export interface TrustMark {
  sequence: number
  /** Lower-case hex SHA-256 of the serialized Spore. */
  digest: string
}

/** A spore that passed every check. */
export interface VerifiedSpore {
  name: string
  sequence: number
  spore: Spore
  signed: SignedSpore
  digest: string
  /** Where it came from. */
  source: string
}

export interface VerifyContext {
  trust: TrustedKeys
  nowMs: number
  clockSlackMs: number
  /** Where the bytes came from, for errors. */
  source: string
  /** What is already trusted for a name (rollback protection). */
  markFor(name: string): TrustMark | undefined
}

const UNDECODABLE = '(undecodable)'

/**
 * Spore name grammar (also documented on `Spore.name` in spore.proto):
 * `bootstrap`, `service/<label>` or `component/<label>`, where a label is 1–63
 * characters of a-z, 0-9 and "-", starting and ending with a letter or digit
 * (a DNS label). ASCII only, so no look-alike, path separator, dot segment,
 * NUL or whitespace can reach a log line, a file name or a map key.
 */
export const SPORE_NAME_PATTERN = /^(?:bootstrap|(?:service|component|release)\/[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)$/
/** Longest name the grammar allows ("component/" + 63). */
export const SPORE_NAME_MAX_LENGTH = 73
/** More signatures than any trust bundle needs is an attempt to burn CPU. */
export const MAX_SPORE_SIGNATURES = 32
/** A serialized Spore larger than this is refused before it is decoded. */
export const MAX_SPORE_BYTES = 256 * 1024

/** Why `name` breaks the spore name grammar, or undefined. */
export function sporeNameProblem(name: string): string | undefined {
  if (SPORE_NAME_PATTERN.test(name)) return undefined
  const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name)
  return `name ${shown}${name.length > 80 ? ` (${name.length} characters)` : ''} is not "bootstrap", "service/<label>" or "component/<label>" (label: a-z, 0-9, "-", at most 63)`
}

/** A printable stand-in for a name that broke the grammar (errors and logs only). */
const printableName = (name: string): string =>
  name.length === 0 ? UNDECODABLE : SPORE_NAME_PATTERN.test(name) ? name : JSON.stringify(name.slice(0, 80))

/** Spore.issued_at / expires_at as written, before a Date loses the nanos and the range. */
function rawTimestampProblem(bytes: Uint8Array, source: string): string | undefined {
  for (const field of readWireFields(bytes, source)) {
    if ((field.fieldNo === 4 || field.fieldNo === 5) && field.bytes != null) {
      const problem = timestampProblem(decodeStrict(Timestamp, field.bytes, source))
      if (problem != null) return `${field.fieldNo === 4 ? 'issued_at' : 'expires_at'}: ${problem}`
    }
  }
  return undefined
}

const ms = (d: Date | undefined): number | undefined => (d == null ? undefined : d.getTime())

/** Name prefixes and the body each must carry. */
function checkNameAndBody(spore: Spore): string | undefined {
  const body = spore.body
  if (body == null) return 'has no body'
  const nameProblem = sporeNameProblem(spore.name)
  if (nameProblem != null) return nameProblem
  if (spore.name === 'bootstrap') {
    if (body.$case !== 'bootstrap') return `is named "bootstrap" but carries a ${body.$case} body`
    if (body.value.trustBundle == null) return 'bootstrap body has no trust bundle'
    return undefined
  }
  const slash = spore.name.indexOf('/')
  const kind = spore.name.slice(0, slash)
  const rest = spore.name.slice(slash + 1)
  if (kind === 'service') {
    if (body.$case !== 'service' || body.value.service !== rest) return `must carry a service body for "${rest}"`
    return undefined
  }
  if (kind === 'component') {
    if (body.$case !== 'component' || body.value.name !== rest) return `must carry a component body for "${rest}"`
    return undefined
  }
  if (kind === 'release') {
    // Its manifest is verified against the release keys where it is used (verifyReleaseManifest).
    if (body.$case !== 'release') return `must carry a release body for "${rest}"`
    return undefined
  }
  return `unknown spore kind "${kind}"`
}

/**
 * Decodes a serialized SignedSpore (as carried by files and streams) and
 * rejects truncated, garbage or non-canonical bytes with MalformedSporeError.
 */
export function decodeSignedSpore(bytes: Uint8Array, source: string): SignedSpore {
  try {
    return decodeStrict(SignedSpore, bytes, source)
  } catch (err) {
    throw new MalformedSporeError(UNDECODABLE, source, `not a SignedSpore: ${(err as Error).message}`)
  }
}

/** Why a value handed in as a SignedSpore does not have its shape, or undefined. */
function signedShapeProblem(signed: unknown): string | undefined {
  if (typeof signed !== 'object' || signed == null) return 'not a SignedSpore object'
  const { spore, signatures } = signed as { spore?: unknown; signatures?: unknown }
  if (!(spore instanceof Uint8Array)) return '"spore" is not bytes'
  if (!Array.isArray(signatures)) return '"signatures" is not a list'
  for (const [i, sig] of signatures.entries()) {
    const s = sig as { keyId?: unknown; signature?: unknown } | null
    if (typeof s !== 'object' || s == null || typeof s.keyId !== 'string' || !(s.signature instanceof Uint8Array)) {
      return `signatures[${i}] is not a { keyId, signature } pair`
    }
  }
  return undefined
}

/** How the signatures over some bytes fare against trusted keys. */
export interface SignatureTally {
  /** Distinct trusted keys whose signature verifies. */
  valid: Set<string>
  /** Key ids not among the trusted keys. */
  unknown: string[]
  /** Key ids that signed more than once (counted once). */
  duplicated: string[]
  /** Trusted keys whose signature does not verify. */
  failed: string[]
}

/**
 * Ed25519 signatures over `bytes` checked against `trust`; stops verifying
 * once the threshold is reached (the rest need not cost a verification).
 * Used for spores and for operator-signed emergency operations.
 */
export function tallySignatures(
  bytes: Uint8Array,
  signatures: Array<{ keyId: string; signature: Uint8Array }>,
  trust: TrustedKeys
): SignatureTally {
  const tally: SignatureTally = { valid: new Set(), unknown: [], duplicated: [], failed: [] }
  const seen = new Set<string>()
  for (const sig of signatures) {
    if (seen.has(sig.keyId)) {
      tally.duplicated.push(sig.keyId)
      continue
    }
    seen.add(sig.keyId)
    const key = trust.keys.get(sig.keyId)
    if (key == null) {
      tally.unknown.push(sig.keyId)
      continue
    }
    if (sig.signature.length === 64 && verifySignature(null, bytes, key, sig.signature)) {
      tally.valid.add(sig.keyId)
      if (tally.valid.size >= trust.threshold) return tally
    } else {
      tally.failed.push(sig.keyId)
    }
  }
  return tally
}

/** Throws unless distinct trusted keys with valid signatures reach the threshold. */
function checkSignatures(signed: SignedSpore, trust: TrustedKeys, name: string, source: string): void {
  const { valid, unknown, duplicated, failed } = tallySignatures(signed.spore, signed.signatures, trust)
  if (valid.size < trust.threshold) {
    // Report the most telling cause: tampering, then double counting, then strangers.
    const need = `${valid.size} valid of ${trust.threshold} required`
    if (failed.length > 0) {
      throw new InvalidSporeSignatureError(name, source, `signature by key ${failed.join(', ')} does not verify (${need})`)
    }
    if (duplicated.length > 0) {
      throw new DuplicateSporeSignatureError(name, source, `key ${duplicated.join(', ')} signed more than once and counts once (${need})`)
    }
    if (unknown.length > 0) {
      throw new UnknownSporeKeyError(name, source, `signed by unknown key ${unknown.join(', ')} (${need})`)
    }
    throw new InsufficientSporeSignaturesError(name, source, need)
  }
}

/**
 * Verifies one signed spore against the trust keys, the clock and what is
 * already trusted. Returns the verified spore; `unchanged` is true when it is
 * exactly the spore already trusted. Throws a SporeRejectedError otherwise.
 *
 * Order matters: signatures are checked before any field is believed; the
 * name and sequence are read first only to name the spore in errors and to
 * recognise bytes identical to a spore already trusted.
 */
export function verifySpore(signed: SignedSpore, ctx: VerifyContext): { verified: VerifiedSpore; unchanged: boolean } {
  const { source, trust } = ctx
  // Objects from JSON or from another process need not have the shape the
  // types promise: check before touching a field.
  const shape = signedShapeProblem(signed)
  if (shape != null) throw new MalformedSporeError(UNDECODABLE, source, shape)
  if (signed.spore.length > MAX_SPORE_BYTES) {
    throw new MalformedSporeError(UNDECODABLE, source, `spore is ${signed.spore.length} bytes, more than the ${MAX_SPORE_BYTES} allowed`)
  }
  let spore: Spore
  try {
    // Strict: a wrapped or over-long varint, invalid UTF-8 or an
    // out-of-range timestamp would let two readers see different values.
    spore = decodeStrict(Spore, signed.spore, source)
  } catch (err) {
    throw new MalformedSporeError(UNDECODABLE, source, `not a Spore: ${(err as Error).message}`)
  }
  const name = printableName(spore.name)
  if (signed.signatures.length > MAX_SPORE_SIGNATURES) {
    throw new MalformedSporeError(name, source, `${signed.signatures.length} signatures, more than the ${MAX_SPORE_SIGNATURES} allowed`)
  }

  // Exactly the bytes already trusted under this name and sequence: they were
  // verified when first accepted, and a copy of them gains an attacker
  // nothing, so the costly signature checks are skipped (watch snapshots,
  // polls and peers resend the same set all the time). Time is still checked.
  const digest = createHash('sha256').update(signed.spore).digest('hex')
  const mark = ctx.markFor(spore.name)
  const alreadyTrusted = mark != null && mark.sequence === spore.sequence && mark.digest === digest
  if (!alreadyTrusted) checkSignatures(signed, trust, name, source)

  if (spore.networkId !== trust.networkId) {
    throw new WrongNetworkSporeError(name, source, `is for network "${spore.networkId}", this node is in "${trust.networkId}"`)
  }
  const shapeProblem = checkNameAndBody(spore)
  if (shapeProblem != null) throw new MalformedSporeError(name, source, shapeProblem)
  const issuedAt = ms(spore.issuedAt)
  const expiresAt = ms(spore.expiresAt)
  if (issuedAt == null || expiresAt == null) throw new MalformedSporeError(name, source, 'issued_at and expires_at are required')
  const timeProblem = rawTimestampProblem(signed.spore, source)
  if (timeProblem != null) throw new MalformedSporeError(name, source, timeProblem)
  if (expiresAt <= issuedAt) throw new MalformedSporeError(name, source, 'expires_at is not after issued_at')
  if (ctx.nowMs + ctx.clockSlackMs < issuedAt) {
    throw new NotYetValidSporeError(name, source, `issued at ${spore.issuedAt!.toISOString()}, in the future beyond the clock slack`)
  }
  if (ctx.nowMs - ctx.clockSlackMs > expiresAt) {
    throw new ExpiredSporeError(name, source, `expired at ${spore.expiresAt!.toISOString()}`)
  }

  if (mark != null) {
    if (spore.sequence < mark.sequence) {
      throw new SporeRollbackError(name, source, `sequence ${spore.sequence} is lower than the trusted ${mark.sequence}`)
    }
    if (spore.sequence === mark.sequence && digest !== mark.digest) {
      throw new SporeEquivocationError(name, source, `sequence ${spore.sequence} is already trusted with different content`)
    }
  }
  return {
    verified: { name: spore.name, sequence: spore.sequence, spore, signed, digest, source },
    unchanged: alreadyTrusted
  }
}
