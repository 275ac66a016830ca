// `npm run test:unit`: the fast, pure tests of every package in one jest run —
// no sockets, no child processes, nothing beyond temp files. Integration specs
// (`*.int.spec.ts`: real TLS, real processes, containerd, netns) are left to
// `npm test`, which runs every spec of every package once through Nx.
// Each package keeps its own jest.config.cjs; this only drops the .int specs.
const { existsSync, readdirSync } = require('node:fs')
const { join } = require('node:path')

const projects = []
for (const group of ['packages', 'apps', 'tools']) {
  for (const name of readdirSync(join(__dirname, group)).sort()) {
    const dir = join(__dirname, group, name)
    const config = join(dir, 'jest.config.cjs')
    if (!existsSync(config)) continue
    projects.push({
      ...require(config),
      rootDir: dir,
      testPathIgnorePatterns: ['/node_modules/', '\\.int\\.spec\\.ts$']
    })
  }
}

/** @type {import('jest').Config} */
module.exports = { projects }
