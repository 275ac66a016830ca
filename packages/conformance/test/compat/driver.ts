/**
 * A dev network driven over stdin/stdout (JSON lines), bundled by the compat
 * test once against today's tools/dev-network and once against the last
 * release's: it uses only the API both have (startDevNetwork, nodeConfigYaml,
 * newJoinToken, commands.send, stopManager/startManager and the
 * 'managed'/'update' events).
 *
 * argv[2]: {"dir", "nodeId"}. Out: {"event":"up"} once node.yaml is written in
 * dir, then "managed", "update", "stopped", "started" events. In: {"op":"restart",
 * "commandId","component"}, {"op":"stop-nm"}, {"op":"start-nm"}; stdin closed: stop.
 */
import { randomUUID } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { CommandState } from '@mycelium/core-interfaces'
import { startDevNetwork } from '@mycelium/dev-network'

const { dir, nodeId } = JSON.parse(process.argv[2] ?? '{}') as { dir: string; nodeId: string }
const print = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`)

async function main(): Promise<void> {
  const net = await startDevNetwork({ networkId: 'compat', heartbeatIntervalMs: 500 })
  net.networkManager.on('managed', (n) => print({ event: 'managed', nodeId: n.nodeId }))
  net.commands.on('update', (node, u) =>
    print({ event: 'update', nodeId: node, commandId: u.commandId, state: CommandState[u.state], reason: u.reason })
  )
  const tokenFile = join(dir, 'join-token')
  writeFileSync(tokenFile, await net.newJoinToken())
  const yaml = net.nodeConfigYaml({ nodeId, stateDir: join(dir, 'state'), joinTokenFile: tokenFile, socketPath: join(dir, 'status.sock') })
  // Short reconnection so the return from FALLBACK is quick (both versions have these keys).
  writeFileSync(join(dir, 'node.yaml'), `${yaml}reconnect:\n  initial: 200ms\n  max: 1s\n`)
  print({ event: 'up', driver: randomUUID() })
  for await (const line of createInterface({ input: process.stdin })) {
    const op = JSON.parse(line) as { op: string; commandId?: string; component?: string }
    if (op.op === 'restart') {
      net.commands.send(nodeId, {
        commandId: op.commandId!,
        issuedAt: new Date(),
        deadline: new Date(Date.now() + 60_000),
        issuer: 'compat test',
        kind: { $case: 'restart', value: { component: op.component ?? '' } }
      })
    } else if (op.op === 'stop-nm') {
      await net.stopManager('network-manager')
      print({ event: 'stopped' })
    } else if (op.op === 'start-nm') {
      await net.startManager('network-manager')
      print({ event: 'started' })
    }
  }
  await net.stop()
}

main().catch((err: unknown) => {
  process.stderr.write(`compat driver: ${(err as Error).stack ?? String(err)}\n`)
  process.exitCode = 1
})
