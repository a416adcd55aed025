import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'tools/parity/.venv/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      // tfjs is an implementation detail of src/engine: everything else imports `tf` from there.
      'no-restricted-imports': ['error', { patterns: [{ group: ['@tensorflow/*'], message: "Import { tf } from src/engine instead." }] }],
    },
  },
  { files: ['src/engine/**'], rules: { 'no-restricted-imports': 'off' } },
);
