#!/usr/bin/env node
/**
 * A dev network in its own process for the crash-loop and disk-fault tests:
 * it writes the node's config, queues commands on every command session of
 * the node (while sending is on), and prints one JSON line per event on
 * stdout: ready, session, sent, update. Lines on stdin: "stop-sending",
 * "send <n> [restart|reconfigure|slow-reconfigure|update]". SIGTERM stops it.
 *
 * usage: node command-manager.cjs <dir> <nodeId> [commandsPerSession] [stateDir]
 */
const { appendFileSync, writeFileSync } = require('node:fs')
const { join } = require('node:path')
const { createInterface } = require('node:readline')
const { startDevNetwork } = require('@mycelium/dev-network')
const { CommandState, NodeConfig } = require('@mycelium/core-interfaces')

const [dir, nodeId, perSessionArg, stateDirArg] = process.argv.slice(2)
const perSession = Number(perSessionArg ?? 3)
const out = (event) => process.stdout.write(`${JSON.stringify({ ...event, t: Date.now() })}\n`)

async function main() {
  const net = await startDevNetwork({ networkId: 'crash', dir: join(dir, 'network'), heartbeatIntervalMs: 500 })
  const tokenFile = join(dir, 'join-token')
  writeFileSync(tokenFile, net.joinToken)
  const config = join(dir, 'node.yaml')
  writeFileSync(
    config,
    net.nodeConfigYaml({
      nodeId,
      stateDir: stateDirArg ?? join(dir, 'state'),
      joinTokenFile: tokenFile,
      socketPath: join(dir, 'status.sock'),
      httpListenAddress: '127.0.0.1:0',
      logLevel: 'info'
    })
  )
  appendFileSync(config, 'handoff:\n  configConfirmWindow: 300ms\n')
  let sending = true
  let seq = 0
  let version = 1000
  /** Sends command number n+1; `only` picks its kind (restart, reconfigure, slow-reconfigure, update). */
  const send = (only) => {
    const n = ++seq
    const deadline = new Date(Date.now() + 60_000)
    // A mix: a quick restart, a config trial that stays RUNNING for its
    // confirmation window (in flight when a kill lands), and a refused update.
    const kinds = [
      { $case: 'restart', value: { component: 'http' } },
      {
        $case: 'reconfigure',
        value: {
          config: NodeConfig.fromPartial({ version: ++version, networkId: 'crash', labels: { seq: String(n) } }),
          confirmWindow: { seconds: 0, nanos: 300_000_000 }
        }
      },
      { $case: 'update', value: { component: '', version: '9.9.9', artifactDigest: 'sha256:00', artifactUrls: [] } }
    ]
    const slow = {
      $case: 'reconfigure',
      value: {
        config: NodeConfig.fromPartial({ version: ++version, networkId: 'crash', labels: { seq: String(n) } }),
        confirmWindow: { seconds: 5, nanos: 0 }
      }
    }
    const kind = only === 'slow-reconfigure' ? slow : only != null ? kinds.find((k) => k.$case === only) : kinds[n % kinds.length]
    const commandId = `crash-${n}`
    net.commands.send(nodeId, { commandId, issuedAt: new Date(), deadline, issuer: 'crash-loop', kind })
    out({ type: 'sent', id: commandId, kind: kind.$case })
  }
  net.commands.on('session', (id, state) => {
    out({ type: 'session', state })
    if (state === 'open' && sending) for (let i = 0; i < perSession; i++) send()
  })
  net.commands.on('update', (id, u) =>
    out({ type: 'update', id: u.commandId, state: CommandState[u.state], replayed: u.replayed, reason: u.reason })
  )
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'stop-sending') sending = false
    const m = /^send (\d+)(?: ([a-z-]+))?$/.exec(line)
    if (m != null) for (let i = 0; i < Number(m[1]); i++) send(m[2])
  })
  process.on('SIGTERM', () => {
    void net.stop().then(() => process.exit(0))
  })
  out({ type: 'ready', config })
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`)
  process.exit(1)
})
