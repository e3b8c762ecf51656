import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const LIBRARIES = ['@kubernetes/client-node', 'bullmq', 'ioredis', 'dockerode', '@bull-board/api', '@bull-board/api/bullMQAdapter', '@bull-board/express'];
const LIBRARY_PATHS = LIBRARIES.map((name) => ({ name, message: 'Import client libraries only in src/adapters; depend on an interface from src/domain instead.' }));
/** Folders of the core, above the adapters. */
const CORE = ['controller', 'worker', 'reconcile', 'app', 'api', 'dashboard', 'cli', 'http'];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.stack/', 'charts/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // node:test's describe/test return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'test', 'it', 'suite'] }] },
      ],
      // client-node declares its models as classes but takes plain objects everywhere.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Read the environment only in src/config and the composition root.' },
      ],
    },
  },
  {
    files: ['src/main.ts', 'src/config/**', 'test/**', 'hack/**', 'bench/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // Only the adapters talk to the libraries; the core sees small interfaces.
    files: ['src/**'],
    ignores: ['src/adapters/**'],
    rules: { 'no-restricted-imports': ['error', { paths: LIBRARY_PATHS }] },
  },
  {
    // Layers point down: the domain depends on nothing of ctfleet's, and the
    // adapters implement the domain's ports without reaching into the core.
    files: ['src/domain/**'],
    rules: { 'no-restricted-imports': ['error', { paths: LIBRARY_PATHS, patterns: [{ group: ['../*/**'], message: 'src/domain imports only src/domain: it holds the types and ports everything else depends on.' }] }] },
  },
  {
    files: ['src/adapters/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: CORE.map((folder) => `../../${folder}/**`), message: 'Adapters implement ports from src/domain; they never import the core.' }] }] },
  },
  {
    files: ['test/**'],
    rules: { '@typescript-eslint/require-await': 'off' },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
