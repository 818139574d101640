// ESLint (typescript-eslint, type-aware) for what TypeScript itself does not
// catch. The project's own rules (determinism, layering, cycles) are in
// test/lint/rules.ts and run first, as `node dist/ops/lint/main.js`.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'proto/gen/**', '**/*.js', '**/*.mjs'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      // A promise nobody awaits loses its error: every one is awaited, returned or voided.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', { selector: 'TSEnumDeclaration', message: 'use a union of string literals with a kind field instead of an enum' }],
    },
  },
  {
    // Second line of defence for the determinism boundary.
    files: ['raft/core/**/*.ts', 'raft/kv/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error', 'Date', 'setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'process', 'performance'],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'use the injected Rng' }],
      'no-restricted-imports': ['error', { patterns: ['node:*', 'fs', 'net', 'os', 'child_process', 'crypto', 'timers'] }],
    },
  },
);
