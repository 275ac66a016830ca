module.exports = { ...require('../../jest.preset.cjs'), displayName: 'spore-tools' }
