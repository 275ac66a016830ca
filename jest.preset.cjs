// Shared jest settings: swc strips types (tsc typechecks separately, see the
// `typecheck` target), sibling packages resolve to their TypeScript source
// through the "@mycelium/source" export condition so tests never need a build.
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  testEnvironmentOptions: {
    customExportConditions: ['@mycelium/source', 'node', 'require', 'default']
  },
  transform: {
    '^.+\\.(t|j)s$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'commonjs' }
      }
    ]
  },
  // Sources import './x.js' (NodeNext style); point jest at the .ts file.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testMatch: ['<rootDir>/test/**/*.spec.ts'],
  testTimeout: 30000
}
