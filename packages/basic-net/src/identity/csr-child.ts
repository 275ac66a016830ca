import { spawn } from 'node:child_process'
import { createPrivateKey, type KeyObject } from 'node:crypto'
import { InvalidInputError } from '@mycelium/core-interfaces'
import { createCsr } from '../x509.js'

/** Makes a CSR for `spiffeId` signed by `privateKey` (an IdentityStore component: in this process, or a child). */
export type CsrMaker = (privateKey: KeyObject, spiffeId: string) => Promise<Buffer>

/** What a CSR child reads on stdin: one JSON object. */
interface CsrRequest {
  spiffeId: string
  /** PKCS#8 PEM. */
  keyPem: string
}

/** A CSR child that has not answered by then is killed: enrolment retries with its own backoff. */
export const CSR_CHILD_TIMEOUT_MS = 30_000
/** Far above a P-256 CSR (~250 bytes): output beyond it is not a CSR. */
const MAX_CSR_BYTES = 64 * 1024
/** The request is a key and an id (~300 bytes): a child reading more is being fed something else. */
const MAX_REQUEST_BYTES = 64 * 1024

export class CsrChildError extends Error {
  override readonly name = 'CsrChildError'
}

/**
 * A CsrMaker that makes each CSR in a short-lived child process, `command`
 * (argv, the first element the executable) serving `serveCsrRequest`. Why a
 * process: the X.509 library that writes the CSR stays in memory once loaded
 * (~4 MB of the daemon's idle RSS after enrolment and after every renewal,
 * tools/bench); a worker thread measured no better (its heap is freed, its
 * malloc arena is not). A process gives all of it back when it exits.
 *
 * The key goes to the child over a pipe (never argv or a file); the child
 * answers the DER request on stdout. A child that fails, exits non-zero or
 * runs past `timeoutMs` is a CsrChildError naming the command and its stderr.
 */
export function csrInChildProcess(command: readonly string[], options: { timeoutMs?: number } = {}): CsrMaker {
  if (command.length === 0) throw new TypeError('csrInChildProcess: empty command')
  const timeoutMs = options.timeoutMs ?? CSR_CHILD_TIMEOUT_MS
  const shown = command.join(' ')
  return (privateKey, spiffeId) =>
    new Promise<Buffer>((resolve, reject) => {
      let failure: string | undefined
      const child = spawn(command[0]!, command.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] })
      // Not spawn's own `timeout`: its timer outlives a child that never started (ENOENT).
      const timer = setTimeout(() => {
        failure ??= `did not answer within ${timeoutMs} ms`
        child.kill('SIGKILL')
      }, timeoutMs)
      const out: Buffer[] = []
      let outBytes = 0
      let err = ''
      child.stdout.on('data', (b: Buffer) => {
        outBytes += b.length
        if (outBytes > MAX_CSR_BYTES) {
          failure ??= `wrote more than ${MAX_CSR_BYTES} bytes`
          child.kill('SIGKILL')
        } else out.push(b)
      })
      child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-2000)))
      child.on('error', (e) => (failure ??= e.message))
      // The child may exit before reading (a wrong command): EPIPE here is reported by the exit below.
      child.stdin.on('error', () => undefined)
      child.on('close', (code, signal) => {
        clearTimeout(timer)
        const why =
          failure ??
          (code !== 0
            ? `exited with ${code ?? signal}${err.trim() !== '' ? `: ${err.trim()}` : ''}`
            : outBytes === 0
              ? 'wrote no CSR'
              : undefined)
        if (why != null) reject(new CsrChildError(`making the CSR in a child process (${shown}) failed: ${why}`))
        else resolve(Buffer.concat(out))
      })
      const request: CsrRequest = { spiffeId, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }
      child.stdin.end(JSON.stringify(request))
    })
}

/**
 * The child's half of `csrInChildProcess`: reads one request from `input`,
 * writes the CSR's DER to `output`. A request that is not one is an
 * InvalidInputError naming what is wrong (`where`: stdin).
 */
export async function serveCsrRequest(
  input: AsyncIterable<Buffer | string>,
  output: NodeJS.WritableStream,
  where = 'stdin'
): Promise<void> {
  let text = ''
  for await (const chunk of input) {
    text += chunk.toString()
    if (text.length > MAX_REQUEST_BYTES) throw new InvalidInputError(`is longer than ${MAX_REQUEST_BYTES} bytes: not a CSR request`, where)
  }
  let request: Partial<CsrRequest>
  try {
    request = JSON.parse(text) as Partial<CsrRequest>
  } catch (err) {
    throw new InvalidInputError(`is not a JSON CSR request: ${(err as Error).message}`, where)
  }
  if (typeof request !== 'object' || request == null) throw new InvalidInputError('is not a JSON object', where)
  if (typeof request.spiffeId !== 'string') throw new InvalidInputError('has no "spiffeId" string', where)
  if (typeof request.keyPem !== 'string') throw new InvalidInputError('has no "keyPem" string', where)
  let key: KeyObject
  try {
    key = createPrivateKey(request.keyPem)
  } catch (err) {
    throw new InvalidInputError(`"keyPem" is not a private key: ${(err as Error).message}`, where)
  }
  const der = await createCsr(key, request.spiffeId)
  await new Promise<void>((resolve, reject) => output.write(der, (err) => (err != null ? reject(err) : resolve())))
}
