import { setMaxListeners } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { randomBytes, X509Certificate } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { InvalidInputError } from '@mycelium/core-interfaces'
import { callUnary } from '@mycelium/core-utils'
import { createIdentityStore, spiffeIdFromSubjectAltName, type IdentityStore } from '@mycelium/basic-net'
import { CheckSkippedError, isCheckFailedError, isCheckSkippedError } from './errors.js'
import { createClients, statusName, type CheckContext } from './context.js'
import type { Check } from './checks/check.js'
import { checkBadTokenRefused, enrolNode, ENROLMENT_PINNED_CA, ENROLMENT_REFUSES_BAD_TOKEN, type Enrolled } from './checks/enrolment.js'
import {
  admissionRetryAfter,
  handoffCommit,
  handoffDeadline,
  handoffRefuseUnknown,
  heartbeatAcks,
  heartbeatGenerations,
  leaseExpiry,
  registrationContractNegotiation
} from './checks/network-manager.js'
import { commandsDelivery, commandsEmergencySignature, commandsSession } from './checks/commands.js'
import { sporesListGet, sporesWatchChanges, sporesWatchResume } from './checks/spores.js'
import { artifactsRangedGet } from './checks/artifacts.js'
import {
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_MAX_WAIT_MS,
  type CheckResult,
  type CheckStatus,
  type ConformanceInit,
  type ConformanceReport
} from './types.js'

/**
 * Every check after enrolment, in run order: quick ones first, the ones that
 * wait out a deadline next, and admission last (it empties the manager's
 * registration budget on purpose).
 */
const CHECKS: Check[] = [
  registrationContractNegotiation,
  handoffCommit,
  handoffRefuseUnknown,
  heartbeatAcks,
  heartbeatGenerations,
  commandsSession,
  commandsDelivery,
  commandsEmergencySignature,
  sporesListGet,
  sporesWatchResume,
  sporesWatchChanges,
  artifactsRangedGet,
  handoffDeadline,
  leaseExpiry,
  admissionRetryAfter
]

/** Every check the kit has, with what each proves, in run order. */
export const CONFORMANCE_CHECKS: ReadonlyArray<{ name: string; proves: string }> = [
  ENROLMENT_PINNED_CA,
  ENROLMENT_REFUSES_BAD_TOKEN,
  ...CHECKS
].map(({ name, proves }) => ({ name, proves }))

const selected = (name: string, only: string[] | undefined): boolean =>
  only == null || only.length === 0 || only.some((o) => name === o || (o.endsWith('.') && name.startsWith(o)))

/** Loads the identity the caller gave (PEM files); network and node come from the certificate's SPIFFE id. */
async function loadIdentity(
  files: NonNullable<ConformanceInit['identity']>
): Promise<{ identity: IdentityStore; networkId: string; nodeId: string }> {
  let pem: string
  try {
    pem = await readFile(files.certificateFile, 'utf8')
  } catch (err) {
    throw new InvalidInputError(`cannot read the certificate: ${(err as Error).message}`, files.certificateFile)
  }
  const id = spiffeIdFromSubjectAltName(new X509Certificate(pem).subjectAltName, files.certificateFile)
  if (id.role !== 'node')
    throw new InvalidInputError(`names ${id.role} "${id.name}"; the kit needs a node certificate`, files.certificateFile)
  const identity = createIdentityStore(
    {},
    { networkId: id.networkId, name: id.name, keyFile: files.keyFile, certificateFile: files.certificateFile, caFile: files.caFile }
  )
  await identity.start()
  if (identity.material() == null) {
    identity.stop()
    throw new InvalidInputError(
      `not a usable identity: ${identity.report().reason}`,
      `${files.certificateFile}, ${files.keyFile}, ${files.caFile}`
    )
  }
  return { identity, networkId: id.networkId, nodeId: id.name }
}

/**
 * Runs the conformance checks against the implementations `init` names and
 * returns the report; never throws for what an implementation does (that is a
 * failed check), only for unusable input (InvalidInputError: a file, a flag).
 */
export async function runConformance(init: ConformanceInit): Promise<ConformanceReport> {
  const startedAt = new Date()
  const results: CheckResult[] = []
  // The run's own signal, following the caller's: every call listens on it (the admission burst
  // alone sends hundreds at once), so the listener limit is raised here, not on the caller's.
  const run = new AbortController()
  setMaxListeners(0, run.signal)
  const signal = run.signal
  if (init.signal?.aborted) run.abort(init.signal.reason)
  const follow = (): void => run.abort(init.signal?.reason)
  init.signal?.addEventListener('abort', follow, { once: true })
  const callTimeoutMs = init.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS
  const record = (name: string, proves: string, status: CheckStatus, detail: string, t0: number): void => {
    const r: CheckResult = { name, proves, status, detail, durationMs: Date.now() - t0 }
    results.push(r)
    init.onResult?.(r)
  }
  const outcome = async (check: { name: string; proves: string }, run: () => Promise<string | void>): Promise<void> => {
    if (!selected(check.name, init.only)) return
    const t0 = Date.now()
    try {
      record(check.name, check.proves, 'passed', (await run()) ?? '', t0)
    } catch (err) {
      if (signal.aborted) throw err
      if (isCheckSkippedError(err)) record(check.name, check.proves, 'skipped', err.message, t0)
      else record(check.name, check.proves, 'failed', isCheckFailedError(err) ? err.message : `unexpected: ${statusName(err)}`, t0)
    }
  }

  const dir = await mkdtemp(join(tmpdir(), 'mycelium-conformance-'))
  let node: { identity: IdentityStore; networkId: string; nodeId: string; trustBundle?: Enrolled['trustBundle'] } | undefined
  let clients: ReturnType<typeof createClients> | undefined
  try {
    const enrollment = init.enrollment ?? init.networkManager
    let enrolled: Enrolled | undefined
    if (init.joinToken != null && enrollment != null) {
      const enrolment = (): Promise<Enrolled> =>
        enrolNode({
          address: enrollment,
          joinToken: init.joinToken!,
          nodeId: init.nodeId ?? `conformance-${randomBytes(4).toString('hex')}`,
          dir,
          timeoutMs: callTimeoutMs
        })
      if (selected(ENROLMENT_PINNED_CA.name, init.only)) {
        await outcome(ENROLMENT_PINNED_CA, async () => {
          enrolled = await enrolment()
          return enrolled.detail
        })
      } else {
        // Not reported, but the identity the other checks present still comes from it.
        enrolled = await enrolment().catch((err: unknown) => {
          throw new InvalidInputError(`enrolment with the join token failed: ${(err as Error).message}`, 'join token')
        })
      }
      await outcome(ENROLMENT_REFUSES_BAD_TOKEN, async () => {
        if (enrolled == null) throw new CheckSkippedError('enrolment failed: there is no node key to send a CSR for')
        return checkBadTokenRefused({
          address: enrollment,
          joinToken: init.joinToken!,
          nodeId: enrolled.nodeId,
          csrDer: await enrolled.identity.createCsr(),
          timeoutMs: callTimeoutMs,
          signal
        })
      })
    } else {
      const why = init.joinToken == null ? 'no join token given' : 'no enrolment address given'
      for (const c of [ENROLMENT_PINNED_CA, ENROLMENT_REFUSES_BAD_TOKEN]) {
        if (selected(c.name, init.only)) record(c.name, c.proves, 'skipped', why, Date.now())
      }
    }
    if (enrolled != null) node = enrolled
    else if (init.identity != null) node = await loadIdentity(init.identity)
    const trustBundle = enrolled?.trustBundle ?? init.trustBundle
    for (const check of CHECKS) {
      if (node == null) {
        if (selected(check.name, init.only)) {
          record(
            check.name,
            check.proves,
            'skipped',
            'no node identity: enrolment failed or was not asked for, and no certificate was given',
            Date.now()
          )
        }
        continue
      }
      const n = node
      clients ??= createClients(n.identity, n.networkId, init)
      const c = clients
      const ctx: CheckContext = {
        init,
        networkId: n.networkId,
        nodeId: n.nodeId,
        identity: n.identity,
        ...(trustBundle != null ? { trustBundle } : {}),
        signal,
        callTimeoutMs,
        maxWaitMs: init.maxWaitMs ?? DEFAULT_MAX_WAIT_MS,
        networkManager: c.networkManager,
        commandChannel: c.commandChannel,
        sporeService: c.sporeService,
        call: (method, request) => callUnary(method, request, signal, callTimeoutMs)
      }
      await outcome(check, () => check.run(ctx))
    }
  } finally {
    init.signal?.removeEventListener('abort', follow)
    clients?.close()
    node?.identity.stop()
    await rm(dir, { recursive: true, force: true })
  }
  const count = (s: CheckStatus): number => results.filter((r) => r.status === s).length
  return {
    results,
    passed: count('passed'),
    failed: count('failed'),
    skipped: count('skipped'),
    startedAt,
    durationMs: Date.now() - startedAt.getTime()
  }
}
