// Bundles the plain-Node agent/CLI and the thin Electron shell into build/main (CommonJS).
// esbuild instead of tsc for speed: `npm run typecheck` is the type gate.
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  external: ['electron', 'keytar'],
  logLevel: 'warning',
};

await Promise.all([
  build({ ...common, entryPoints: { cli: 'src-main/cli.ts', sync: 'src-main/sync-main.ts' }, outdir: 'build/main' }),
  build({ ...common, entryPoints: { helper: 'src-main/helper.ts', fleet: 'src-main/fleet.ts', 'bench-image': 'scripts/bench-image.ts' }, outdir: 'build/main' }),
  build({ ...common, entryPoints: { shell: 'src-main/shell/main.ts' }, outdir: 'build/main' }),
  // Sandboxed preloads may only require('electron'): bundle everything else in.
  build({ ...common, entryPoints: { preload: 'src-main/shell/preload.ts' }, outdir: 'build/main' }),
]);
