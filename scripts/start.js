#!/usr/bin/env node
'use strict';
// `npm start [-- --app <dir>]`: build if needed, then run the local Functions host (localhost/main.ts).
const path = require('node:path');
const { ensureBuilt, root } = require('./ensureBuilt');

const host = path.join(root, 'dist', 'localhost', 'main.js');
ensureBuilt(host);
require(host).run(process.argv.slice(2));
