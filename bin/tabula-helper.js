#!/usr/bin/env node
'use strict';
// Installed as /usr/libexec/tabula/tabula-helper (see assets/polkit/); run through pkexec only.
require(require('node:path').join(__dirname, '..', 'build', 'main', 'helper.js'));
