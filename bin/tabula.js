#!/usr/bin/env node
'use strict';
const path = require('node:path');
const fs = require('node:fs');

const cli = path.join(__dirname, '..', 'build', 'main', 'cli.js');
if (!fs.existsSync(cli)) {
  console.error('Tabula is not built yet: run `npm run build` in ' + path.dirname(__dirname));
  process.exit(1);
}
require(cli);
