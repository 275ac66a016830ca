module.exports = { ...require('../../jest.preset.cjs'), displayName: 'bootstrap-agent' }
