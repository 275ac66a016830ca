import { spawn } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { parseCsr } from '@mycelium/dev-pki'
import { BIN } from './helpers/daemon.js'

/** `node-core csr-child` of the release artifact, fed on stdin as the daemon feeds it (basic-net `csrInChildProcess`). */
function csrChild(input: string): Promise<{ code: number | null; out: Buffer; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'csr-child'], { stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    let err = ''
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('close', (code) => resolve({ code, out: Buffer.concat(out), err }))
    child.stdin.end(input)
  })
}

describe('node-core csr-child (the release artifact)', () => {
  it('answers a request with a CSR for the id, signed by the key it was given', async () => {
    const keyPem = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    const { code, out, err } = await csrChild(JSON.stringify({ spiffeId: 'spiffe://net1/node/n7', keyPem }))
    expect({ code, err }).toEqual({ code: 0, err: '' })
    expect((await parseCsr(out)).spiffeUri).toBe('spiffe://net1/node/n7')
  })

  it('refuses a request that is not one: one line naming stdin, exit 2, nothing on stdout', async () => {
    const { code, out, err } = await csrChild('{"spiffeId":"spiffe://net1/node/n7"}')
    expect(code).toBe(2)
    expect(err).toBe('error: stdin: has no "keyPem" string\n')
    expect(out.length).toBe(0)
  })

  it("is not in --help: it is the daemon's, not an operator's", async () => {
    const help = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, [BIN, '--help'], { stdio: ['ignore', 'pipe', 'ignore'] })
      let text = ''
      child.stdout.on('data', (d: Buffer) => (text += d.toString()))
      child.on('close', () => resolve(text))
    })
    expect(help).toContain('run ')
    expect(help).not.toContain('csr-child')
  })
})
