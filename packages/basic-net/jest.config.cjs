module.exports = { ...require('../../jest.preset.cjs'), displayName: 'basic-net' }
