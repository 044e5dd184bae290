import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];
const noElectron = { name: 'electron', message: 'Only src-main/shell/ may import electron; the agent is plain Node.' };
const noNode = nodeBuiltins.map((name) => ({ name, message: 'This code runs in the browser sandbox: no Node built-ins.' }));

export default tseslint.config(
  { ignores: ['build/**', 'dist/**', 'node_modules/**', 'test-results/**', 'playwright-report/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', __dirname: 'readonly', require: 'readonly', module: 'writable' } },
    rules: { '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }] },
  },
  // The layer rule (STYLE.md): electron only in the shell, no Node in the renderer or in shared code.
  { files: ['src-main/core/**', 'src-main/*.ts', 'test/**'], rules: { 'no-restricted-imports': ['error', { paths: [noElectron] }] } },
  { files: ['src-main/common/**', 'src-renderer/**'], rules: { 'no-restricted-imports': ['error', { paths: [noElectron, ...noNode] }] } },
  { files: ['bin/**', 'scripts/**', 'test/lab/*.cjs'], rules: { '@typescript-eslint/no-require-imports': 'off' } },
);
