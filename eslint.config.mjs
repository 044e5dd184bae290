import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';
import path from 'node:path';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];
const noElectron = { name: 'electron', message: 'Only src-main/shell/ may import electron; the agent is plain Node.' };
const noNode = nodeBuiltins.map((name) => ({ name, message: 'This code runs in the browser sandbox: no Node built-ins.' }));

// Features as plug-ins (STYLE.md, "One lifecycle"): each folder below is a feature of the agent. A feature
// imports only core/runtime/, the shared files at the core's root and src-main/common/; never another
// feature, and never the floor above (the agent and its transports). What two features need moves down.
const features = ['sync', 'image', 'fleet', 'helpdesk', 'prefs'];
const upperFloor = ['agent', 'http-server', 'ipc-adapter', 'agent-socket', 'remote-agent'];
const coreDir = path.resolve('src-main/core');
function placeOf(file) {
  const rel = path.relative(coreDir, file).replace(/\.(ts|tsx)$/, '');
  if (rel.startsWith('..') || path.isAbsolute(rel)) return { floor: 'outside' };
  const [first, ...rest] = rel.split(path.sep);
  if (rest.length && features.includes(first)) return { floor: 'feature', feature: first };
  if (!rest.length && upperFloor.includes(first)) return { floor: 'upper' };
  return { floor: 'lower' };
}
const featureBoundaries = {
  meta: { type: 'problem', schema: [] },
  create(context) {
    const here = placeOf(context.filename);
    if (here.floor !== 'feature' && here.floor !== 'lower') return {};
    const check = (node) => {
      const spec = node.source?.value;
      if (typeof spec !== 'string' || !spec.startsWith('.')) return;
      const there = placeOf(path.resolve(path.dirname(context.filename), spec));
      const what = here.floor === 'feature' ? `The ${here.feature} feature` : 'Shared core code';
      if (there.floor === 'feature' && there.feature !== here.feature) {
        context.report({ node: node.source, message: `${what} must not import the ${there.feature} feature: features are plug-ins that meet only in the agent; move what both need to core/runtime/ or common/.` });
      } else if (there.floor === 'upper' || (there.floor === 'outside' && !path.resolve(path.dirname(context.filename), spec).startsWith(path.resolve('src-main/common')))) {
        context.report({ node: node.source, message: `${what} must not import ${spec}: that is a floor above (the agent, a transport or a command).` });
      }
    };
    return { ImportDeclaration: check, ExportNamedDeclaration: check, ExportAllDeclaration: check };
  },
};

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
  { files: ['src-main/core/**'], plugins: { tabula: { rules: { 'feature-boundaries': featureBoundaries } } }, rules: { 'tabula/feature-boundaries': 'error' } },
  // A home's names are many: push(...names) puts each on the stack, and a million of them overflow it.
  {
    files: ['src-main/core/sync/**'],
    rules: { 'no-restricted-syntax': ['error', { selector: "CallExpression[callee.property.name='push'] > SpreadElement", message: 'push(...list) overflows the stack at a million names: loop, or use append() from tree.ts.' }] },
  },
  { files: ['bin/**', 'scripts/**', 'test/lab/*.cjs'], rules: { '@typescript-eslint/no-require-imports': 'off' } },
);
