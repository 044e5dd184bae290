#!/usr/bin/env node
'use strict';
const path = require('node:path');
const fs = require('node:fs');

// `tabula sync` runs from its own bundle, which loads only the sync code, and only a client of the
// running agent when the run is the agent's (see src-main/sync-main.ts).
const argv = process.argv.slice(2);
const syncCommand = argv[0] === 'sync' && !argv.includes('--help');
const cli = path.join(__dirname, '..', 'build', 'main', syncCommand ? 'sync.js' : 'cli.js');
if (!fs.existsSync(cli)) {
  console.error('Tabula is not built yet: run `npm run build` in ' + path.dirname(__dirname));
  process.exit(1);
}
require(cli);
