// Bundles the plain-Node agent/CLI and the thin Electron shell into build/main (CommonJS).
// esbuild instead of tsc for speed: `npm run typecheck` is the type gate.
import { build } from 'esbuild';
import fs from 'node:fs';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  external: ['electron', 'keytar'],
  logLevel: 'warning',
};

// `tabula sync` loads zod (0.8 MB of its 1 MB bundle, ~0.07 s to read) only when it needs it (a config
// file's verdict, a conflict, an old archive), and a run through the agent never does: zod is a file of
// its own, required by the modules that use it when they are first loaded (they are imported lazily).
const zodApart = {
  name: 'zod-apart',
  setup(b) {
    b.onResolve({ filter: /^zod$/ }, () => ({ path: './sync-zod.js', external: true }));
  },
};

await Promise.all([
  build({ ...common, entryPoints: { cli: 'src-main/cli.ts' }, outdir: 'build/main' }),
  build({ ...common, entryPoints: { sync: 'src-main/sync-main.ts', 'sync-client': 'src-main/sync-client.ts' }, outdir: 'build/main', plugins: [zodApart] }),
  build({ ...common, entryPoints: { 'sync-zod': 'node_modules/zod/index.js' }, outdir: 'build/main' }),
  build({ ...common, entryPoints: { helper: 'src-main/helper.ts', fleet: 'src-main/fleet.ts', 'bench-image': 'scripts/bench-image.ts' }, outdir: 'build/main' }),
  build({ ...common, entryPoints: { shell: 'src-main/shell/main.ts' }, outdir: 'build/main' }),
  // Sandboxed preloads may only require('electron'): bundle everything else in.
  build({ ...common, entryPoints: { preload: 'src-main/shell/preload.ts' }, outdir: 'build/main' }),
]);

// V8 keeps a script's source in memory, one byte a character only if every character fits in one
// (Latin-1). esbuild escapes what is not ASCII in code but leaves comments as they are: one '—' in a
// kept comment made `tabula sync`'s 1 MB bundle take 2 MiB of its 64 MiB budget. Escaped in comments too.
for (const sync of ['build/main/sync.js', 'build/main/sync-client.js']) fs.writeFileSync(sync, fs.readFileSync(sync, 'utf8').replace(/[^\0-\xff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
