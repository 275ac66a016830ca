module.exports = {
  ...require('../../jest.preset.cjs'),
  displayName: 'node-core',
  // In-process nodes with K3s load @kubernetes/client-node (ESM-only) and its auth
  // dependencies: let swc turn them into CommonJS like our own sources (see TOOLCHAIN.md).
  transformIgnorePatterns: ['/node_modules/(?!(@kubernetes/client-node|openid-client|oauth4webapi|jose)/)']
}
