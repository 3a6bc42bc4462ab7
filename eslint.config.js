import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', '.tools/', 'data/', 'test/artifacts/', 'bench/results/'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node builtins, no I/O libraries.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'Node builtins are not allowed in workflow code.' },
            {
              group: ['dockerode', 'hono', 'hono/*', '@hono/*', 'better-sqlite3', 'pino', '**/log-store/*', '**/api/*'],
              message: 'Workflows do I/O only through activities.',
            },
            { group: ['**/activities/*'], message: 'Import activities by type only.', allowTypeImports: true },
          ],
          paths: ['fs', 'path', 'child_process', 'crypto', 'os', 'net', 'http', 'https', 'stream'].map((name) => ({
            name,
            message: 'Node builtins are not allowed in workflow code.',
          })),
        },
      ],
    },
  },
);
