module.exports = { ...require('../../jest.preset.cjs'), displayName: 'self-update' }
