#!/usr/bin/env node
'use strict';
const path = require('node:path');
const fs = require('node:fs');

// `tabula sync` runs from its own bundle, which loads only the sync code (see src-main/sync-main.ts).
const argv = process.argv.slice(2);
const alone = argv[0] === 'sync' && !argv.includes('--help');
const cli = path.join(__dirname, '..', 'build', 'main', alone ? 'sync.js' : 'cli.js');
// A sync reads millions of short-lived records and keeps almost none (issue 9: 64 MiB at 1M files, the
// whole process; Node alone is 40). Measured on a 100,000-file home, peak of a first sync / a 1% run:
// - young generation kept at its starting size: left to itself V8 grows it to 32 MiB for such work;
// - old generation grown by 10% over what survives a collection, not 2-4×: 92 → 74 / 97 → 70 MiB;
// - no optimizing compiler (the baseline one only): its code pages in the node binary and its working
//   memory cost ~10 MiB, 74 → 62 / 70 → 60 MiB, for ~1 s more processor time in a 1% run (a first
//   sync's time is rsync's). Only for `tabula sync`, a process that ends; the agent keeps the defaults.
if (alone) for (const flag of ['--semi-space-growth-factor=1', '--heap-growing-percent=10', '--max-opt=1']) require('node:v8').setFlagsFromString(flag);
if (!fs.existsSync(cli)) {
  console.error('Tabula is not built yet: run `npm run build` in ' + path.dirname(__dirname));
  process.exit(1);
}
require(cli);
