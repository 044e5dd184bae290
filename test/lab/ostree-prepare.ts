// The ostree laptop's base, images 1-3 and pristine disk made ahead of its walk, into the lab's
// cache (ostree-image.ts), by a process of its own that run-lab.ts starts at the idle scheduling
// class while the rsync-tree laptop walks: that laptop's guest leaves the processor idle between its
// boots, and the ostree walk then finds everything made (its log says "from the cache"). Whatever is
// missing or failed here, the walk makes itself and says why.
// Usage: vite-node test/lab/ostree-prepare.ts [path/to/tabula.deb]
import { openOstreeLab } from './ostree-laptop';

const t0 = Date.now();
const log = (s: string) => console.log(`${Math.round((Date.now() - t0) / 1000)} s: ${s}`);
openOstreeLab(process.argv[2] || null, log)
  .then(async ({ lab }) => {
    for (const v of ['2', '3']) await lab.ready(v);
    await lab.settled;
    log('the ostree laptop is made');
    process.exit(0);
  })
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
