// ESLint finds bugs; Prettier owns layout (eslint-config-prettier, last,
// switches off every rule that would fight it). TypeScript is linted with
// type information, one project service over each package's tsconfig.json,
// so promise misuse is caught: a floating promise, or an async function
// where a void callback is expected, loses its rejection. A promise left to
// run on its own says so with `void` and a comment on why it cannot reject.
import js from '@eslint/js'
import prettier from 'eslint-config-prettier'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {
    // Generated code is rebuilt from protos/ (npm run generate), never edited.
    ignores: ['**/generated/**', '**/dist/**', '**/node_modules/**', '.nx/**', 'coverage/**']
  },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname }
    },
    rules: {
      // The bug-finders stay at their recommended level, said out loud:
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // `let x; x = make({ onEvent: () => x... })` is deliberate: a callback
      // fired during construction sees undefined rather than a TDZ error.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // Off: style, not bugs. Found nothing but churn on this code base:
      // an `async` method without `await` keeps an interface's shape; a
      // redundant `!`/`as` is harmless; grpc-js client methods and io
      // callbacks are passed unbound on purpose (call sites bind them).
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      '@typescript-eslint/unbound-method': 'off'
    }
  },
  {
    // Tests read JSON and poke at internals: `any` there is a test's business.
    files: ['**/test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-enum-comparison': 'off'
    }
  },
  {
    files: ['**/*.{js,mjs,cjs}'],
    languageOptions: { globals: { ...globals.node } }
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' }
  },
  prettier
)
