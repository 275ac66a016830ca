import * as grpc from '@grpc/grpc-js'
import { randomUUID, sign } from 'node:crypto'
import { EventEmitter } from 'node:events'
import {
  DistressProblem,
  EmergencyAction,
  EmergencyOperation,
  Spore,
  type Command,
  type DistressAnswer,
  type NetworkManagerServer,
  type SignedSpore
} from '@mycelium/core-interfaces'
import { callerIdentity, csrKeyMatches, isDistressRefusedError, verifyDistress, type VerifiedDistress } from '@mycelium/basic-net'
import { parseCsr } from '@mycelium/dev-pki'
import { signingKeyFromPem } from '@mycelium/spore-tools'
import type { EnrollmentContext } from './enrollment.js'

/** What the desk needs of the dev network. */
export interface DistressDeskComponents {
  enrollment: EnrollmentContext
  /** Every spore the Spore Manager publishes now. */
  spores: () => SignedSpore[]
}

/** One call for help the desk answered (or refused). */
export interface DistressRecord {
  distressId: string
  nodeId: string
  relayedBy: string
  problem: DistressProblem
  evidence: string[]
  /** What was given: spore names, "certificate", command ids. */
  given: string[]
  at: Date
}

export interface DistressDeskEvents {
  distress: [record: DistressRecord]
  refused: [relayedBy: string, reason: string]
}

/** How long a prepared emergency command is valid. */
const EMERGENCY_VALIDITY_MS = 10 * 60_000

/**
 * The Network Manager's answer to emergency contact (ReportDistress): a
 * node that lost its managers calls for help through a MANAGED peer, which
 * forwards the node's signed envelope here. The desk checks the envelope
 * (signed by a member's certificate key, naming that member, enrolled in
 * this network), then gives the help asked: spores newer than the node's,
 * a certificate for the relayed CSR (only for the node's own SPIFFE ID and
 * the key of the certificate that signed the call: the key never travels),
 * and the emergency commands an operator prepared for the node, signed
 * with the network's operator key.
 */
export class DistressDesk extends EventEmitter<DistressDeskEvents> {
  readonly records: DistressRecord[] = []
  private readonly prepared = new Map<string, Command[]>()

  constructor(
    private readonly components: DistressDeskComponents,
    private readonly networkId: string
  ) {
    super()
  }

  /** An operator prepares an emergency command for `nodeId`, given with its next call for help. Returns the command. */
  prepareEmergency(nodeId: string, action: EmergencyAction, reason: string): Command {
    const commandId = `emergency-${randomUUID()}`
    const operation = Buffer.from(
      EmergencyOperation.encode({
        commandId,
        networkId: this.networkId,
        nodeId,
        action,
        reason,
        expiresAt: new Date(Date.now() + EMERGENCY_VALIDITY_MS)
      }).finish()
    )
    const keys = this.components.enrollment.state.operatorKeys.map((pem, i) => signingKeyFromPem(pem, `operator key ${i}`))
    const command: Command = {
      commandId,
      issuedAt: new Date(),
      deadline: new Date(Date.now() + EMERGENCY_VALIDITY_MS),
      issuer: 'operator (distress desk)',
      kind: {
        $case: 'emergency',
        value: { operation, signatures: keys.map((k) => ({ keyId: k.keyId, signature: sign(null, operation, k.privateKey) })) }
      }
    }
    this.prepared.set(nodeId, [...(this.prepared.get(nodeId) ?? []), command])
    return command
  }

  handler(): NetworkManagerServer['reportDistress'] {
    return (call, cb) => {
      let relay: string
      try {
        relay = callerIdentity(call, { networkId: this.networkId, role: 'node' }).name
      } catch (err) {
        cb({ code: grpc.status.PERMISSION_DENIED, details: (err as Error).message })
        return
      }
      const envelope = call.request.envelope
      if (envelope == null) {
        cb({ code: grpc.status.INVALID_ARGUMENT, details: 'ReportDistressRequest.envelope is required' })
        return
      }
      let verified: VerifiedDistress
      try {
        verified = verifyDistress(envelope, { networkId: this.networkId, caPem: this.components.enrollment.ca.certificatePem })
      } catch (err) {
        if (!isDistressRefusedError(err)) throw err
        this.emit('refused', relay, err.message)
        cb({ code: err.reason === 'malformed' ? grpc.status.INVALID_ARGUMENT : grpc.status.PERMISSION_DENIED, details: err.message })
        return
      }
      if (this.components.enrollment.state.nodes[verified.nodeId] == null) {
        const reason = `node "${verified.nodeId}" is not a member of ${this.networkId} (never enrolled)`
        this.emit('refused', relay, reason)
        cb({ code: grpc.status.PERMISSION_DENIED, details: reason })
        return
      }
      this.answer(verified, relay).then(
        (answer) => cb(null, { answer }),
        (err: Error) => cb({ code: grpc.status.INTERNAL, details: err.message })
      )
    }
  }

  private async answer(v: VerifiedDistress, relay: string): Promise<DistressAnswer> {
    const { distress } = v
    const help = distress.help
    const given: string[] = []
    const notes: string[] = []
    const answer: DistressAnswer = {
      distressId: distress.distressId,
      spores: [],
      certificateChainPem: [],
      commands: [],
      reason: '',
      relayedBy: { networkId: this.networkId, nodeId: relay, spiffeId: `spiffe://${this.networkId}/node/${relay}`, certificateSha256: '' }
    }
    if (help?.freshSpores === true) {
      for (const signed of this.components.spores()) {
        const { name, sequence } = Spore.decode(signed.spore)
        if (sequence > (help.knownSequences[name] ?? 0)) {
          answer.spores.push(signed)
          given.push(name)
        }
      }
    }
    if (help != null && help.renewalCsrDer.length > 0) {
      const renewal = await this.renew(v, Buffer.from(help.renewalCsrDer))
      if (typeof renewal === 'string') notes.push(`renewal refused: ${renewal}`)
      else {
        answer.certificateChainPem = [renewal.certificatePem]
        answer.notAfter = renewal.notAfter
        given.push('certificate')
      }
    }
    if (help?.emergencyCommand === true) {
      const commands = this.prepared.get(v.nodeId) ?? []
      this.prepared.delete(v.nodeId)
      answer.commands = commands
      given.push(...commands.map((c) => c.commandId))
    }
    answer.reason = [given.length > 0 ? `given: ${given.join(', ')}` : 'nothing to give', ...notes].join('; ')
    const record: DistressRecord = {
      distressId: distress.distressId,
      nodeId: v.nodeId,
      relayedBy: relay,
      problem: distress.problem,
      evidence: distress.evidence,
      given,
      at: new Date()
    }
    this.records.push(record)
    if (this.records.length > 1000) this.records.shift()
    this.emit('distress', record)
    return answer
  }

  /** A certificate for the CSR, or why not (another identity, another key). */
  private async renew(v: VerifiedDistress, csrDer: Buffer): Promise<{ certificatePem: string; notAfter: Date } | string> {
    let csr
    try {
      csr = await parseCsr(csrDer)
    } catch (err) {
      return `malformed CSR: ${(err as Error).message}`
    }
    if (csr.spiffeId.role !== 'node' || csr.spiffeId.name !== v.nodeId || csr.spiffeId.networkId !== this.networkId)
      return `the CSR names ${csr.spiffeUri}, the caller is node ${v.nodeId}`
    if (!csrKeyMatches(Buffer.from(csr.publicKey.rawData), v.certificate))
      return 'the CSR carries another key than the certificate that signed the call'
    const ttl = this.components.enrollment.certificateTtlMs
    const notAfter = new Date(Date.now() + ttl)
    const { certificatePem } = await this.components.enrollment.ca.issueFromCsr(csrDer, { notAfter })
    return { certificatePem, notAfter }
  }
}
