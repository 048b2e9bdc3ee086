#!/usr/bin/env node
'use strict';
// Placeholder until the local host (infra/localhost/) lands: say what is missing instead of failing silently.
const fs = require('node:fs');
const path = require('node:path');
const host = path.join(__dirname, '..', 'dist', 'infra', 'localhost', 'main.js');
if (fs.existsSync(host)) {
  require(host);
} else {
  console.error('npm start: the local Functions host is not built yet (dist/infra/localhost/main.js is missing).');
  console.error('Run `npm run build`; if the file is still missing, the local host has not landed in this checkout.');
  process.exitCode = 1;
}
