#!/usr/bin/env node
'use strict';
const path = require('node:path');
const fs = require('node:fs');

// `tabula sync` runs from its own bundle, which loads only the sync code (see src-main/sync-main.ts).
const argv = process.argv.slice(2);
const alone = argv[0] === 'sync' && !argv.includes('--help');
const cli = path.join(__dirname, '..', 'build', 'main', alone ? 'sync.js' : 'cli.js');
// A sync reads millions of short-lived records: left to itself V8 grows its young generation to 32 MiB
// for that, a third of the memory budget (issue 9: 64 MiB at 1M files). Kept at its starting size, the
// collections are more frequent and each one smaller.
if (alone) require('node:v8').setFlagsFromString('--semi-space-growth-factor=1');
if (!fs.existsSync(cli)) {
  console.error('Tabula is not built yet: run `npm run build` in ' + path.dirname(__dirname));
  process.exit(1);
}
require(cli);
