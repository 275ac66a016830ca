const preset = require('../../jest.preset.cjs')
module.exports = {
  ...preset,
  displayName: 'k3s-runtime',
  // @kubernetes/client-node 1.x and its auth dependencies are ESM-only: let swc
  // turn them into CommonJS like our own sources (see TOOLCHAIN.md).
  transformIgnorePatterns: ['/node_modules/(?!(@kubernetes/client-node|openid-client|oauth4webapi|jose)/)']
}
