module.exports = { ...require('../../jest.preset.cjs'), displayName: 'k3s-runtime' }
