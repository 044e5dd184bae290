#!/usr/bin/env node
'use strict';
const path = require('node:path');
const fs = require('node:fs');

// `tabula sync` runs from its own bundle, which loads only the sync code; first a small client asks the
// running agent to make the run (src-main/sync-client.ts), and the sync bundle is loaded only when the
// run is made here (src-main/sync-main.ts).
const argv = process.argv.slice(2);
const syncCommand = argv[0] === 'sync' && !argv.includes('--help');
const main = path.join(__dirname, '..', 'build', 'main');
const cli = path.join(main, syncCommand ? 'sync.js' : 'cli.js');
if (!fs.existsSync(cli)) {
  console.error('Tabula is not built yet: run `npm run build` in ' + path.dirname(__dirname));
  process.exit(1);
}
if (syncCommand) require(path.join(main, 'sync-client.js')).runByAgent(argv).then((done) => done || require(cli));
else require(cli);
