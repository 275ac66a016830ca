import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { NODE_METRICS_VERSION } from './versions.js'
import { say, serveComponent } from './component-server.js'

/**
 * node-metrics: a Prometheus exporter of the node's own counters from /proc
 * (load, memory, CPU time by mode, network bytes, uptime). Parameter
 * `listen` ("host:port", default 127.0.0.1:9100). Health: the HTTP server
 * listens; work count: scrapes served.
 */
export function renderNodeMetrics(): string {
  const lines: string[] = []
  const metric = (name: string, help: string, type: 'gauge' | 'counter', samples: Array<[labels: string, value: number]>): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`)
  }
  const [l1, l5, l15] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number)
  metric('node_load1', '1m load average.', 'gauge', [['', l1!]])
  metric('node_load5', '5m load average.', 'gauge', [['', l5!]])
  metric('node_load15', '15m load average.', 'gauge', [['', l15!]])
  const mem = Object.fromEntries(
    readFileSync('/proc/meminfo', 'utf8')
      .split('\n')
      .map((l) => /^(\w+):\s+(\d+)(?: kB)?$/.exec(l))
      .filter((m): m is RegExpExecArray => m != null)
      .map((m) => [m[1]!, Number(m[2]) * 1024])
  )
  for (const k of ['MemTotal', 'MemFree', 'MemAvailable', 'Buffers', 'Cached', 'SwapTotal', 'SwapFree'])
    if (mem[k] != null) metric(`node_memory_${k}_bytes`, `Memory information field ${k}_bytes.`, 'gauge', [['', mem[k]]])
  const modes = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal']
  const cpu: Array<[string, number]> = []
  for (const l of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(l)
    if (m == null) continue
    m[2]!
      .split(' ')
      .slice(0, modes.length)
      .forEach((v, i) => cpu.push([`{cpu="${m[1]}",mode="${modes[i]}"}`, Number(v) / 100]))
  }
  metric('node_cpu_seconds_total', 'Seconds the CPUs spent in each mode.', 'counter', cpu)
  const rx: Array<[string, number]> = []
  const tx: Array<[string, number]> = []
  for (const l of readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2)) {
    const m = /^\s*([^:]+):\s*(.*)$/.exec(l)
    if (m == null) continue
    const f = m[2]!.trim().split(/\s+/).map(Number)
    rx.push([`{device="${m[1]}"}`, f[0]!])
    tx.push([`{device="${m[1]}"}`, f[8]!])
  }
  metric('node_network_receive_bytes_total', 'Network device statistic receive_bytes.', 'counter', rx)
  metric('node_network_transmit_bytes_total', 'Network device statistic transmit_bytes.', 'counter', tx)
  metric('node_uptime_seconds', 'Seconds since boot.', 'gauge', [['', Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0])]])
  return `${lines.join('\n')}\n`
}

export async function runNodeMetrics(): Promise<void> {
  let server: Server | undefined
  let scrapes = 0
  let problem = ''
  await serveComponent({
    name: 'node-metrics',
    version: NODE_METRICS_VERSION,
    begin: async (parameters) => {
      const [host, port] = (parameters.listen ?? '127.0.0.1:9100').split(':')
      server = createServer((req, res) => {
        if (req.url !== '/metrics') {
          res.writeHead(404).end()
          return
        }
        try {
          const body = renderNodeMetrics()
          scrapes++
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body)
        } catch (err) {
          res.writeHead(500).end((err as Error).message)
        }
      })
      server.on('error', (err) => {
        problem = `listener: ${err.message}`
      })
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject)
        server!.listen(Number(port), host, () => resolve())
      })
      say(`serving /metrics on ${host}:${port}`)
    },
    health: () => ({ healthy: problem === '' && server?.listening === true, reason: problem, workCount: scrapes }),
    end: () => new Promise<void>((resolve) => (server != null ? server.close(() => resolve()) : resolve()))
  })
}
