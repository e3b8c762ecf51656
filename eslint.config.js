import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['@kubernetes/client-node', 'bullmq', 'ioredis', 'dockerode', '@bull-board/api', '@bull-board/api/bullMQAdapter', '@bull-board/express'].map((name) => ({
            name,
            message: 'Import client libraries only in src/adapters; depend on an interface from src/domain instead.',
          })),
        },
      ],
    },
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
