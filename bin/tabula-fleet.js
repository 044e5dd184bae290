#!/usr/bin/env node
'use strict';
const path = require('node:path');
const fs = require('node:fs');

const fleet = path.join(__dirname, '..', 'build', 'main', 'fleet.js');
if (!fs.existsSync(fleet)) {
  console.error('tabula-fleet is not built yet: run `npm run build` in ' + path.dirname(__dirname));
  process.exit(1);
}
require(fleet).main(process.argv.slice(2));
