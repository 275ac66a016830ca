import { applyFault, parseFaultAction, startDevNetwork, type DevNetwork } from '../src/index.js'

/** Pushing a config from outside (`dev-network fault push-config`) and reading what nodes report (`nodes`). */
describe('dev-network config controls', () => {
  let net: DevNetwork
  beforeAll(async () => {
    net = await startDevNetwork({ networkId: 'net1' })
  }, 30_000)
  afterAll(() => net?.stop())

  it('push-config offers the next version (or the given one) and refuses a lower one', async () => {
    const start = net.networkManager.desiredConfig.version
    expect(await applyFault(net, parseFaultAction({ action: 'push-config', config: { logging: { level: 'debug' } } }))).toBe(
      `config v${start + 1} offered to every node`
    )
    expect(net.networkManager.desiredConfig).toMatchObject({ version: start + 1, networkId: 'net1', logging: { level: 'debug' } })
    expect(
      await applyFault(
        net,
        parseFaultAction({ action: 'push-config', config: { version: start + 5, k3s: { enabled: true, role: 'K3S_ROLE_SERVER' } } })
      )
    ).toBe(`config v${start + 5} offered to every node`)
    expect(net.networkManager.desiredConfig.k3s).toMatchObject({ enabled: true, role: 1 })
    await expect(applyFault(net, parseFaultAction({ action: 'push-config', config: { version: 1 } }))).rejects.toThrow(
      `config version 1 is not above ${start + 5}`
    )
    expect(() => parseFaultAction({ action: 'push-config', config: 'k3s' })).toThrow('config must be a NodeConfig in proto JSON form')
  })

  it('nodes lists what registered nodes report', async () => {
    expect(await applyFault(net, parseFaultAction({ action: 'nodes' }))).toBe('no nodes registered')
  })
})
