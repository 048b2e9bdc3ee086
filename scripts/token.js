#!/usr/bin/env node
'use strict';
// `npm run token -- <user>`: prints a bearer JWT for <user> from the local dev issuer (1 h), and nothing
// else on stdout, so `TOKEN=$(npm run -s token -- alice)` works.
const path = require('node:path');
const { ensureBuilt, root } = require('./ensureBuilt');

const issuerModule = path.join(root, 'dist', 'infra', 'identity', 'devIssuer.js');
ensureBuilt(issuerModule);
const { devIssuerSettings, mintDevToken } = require(issuerModule);
const { readLocalSettings, mergeSettings } = require(path.join(root, 'dist', 'localhost', 'settings.js'));

const user = process.argv[2];
if (!user || process.argv.length > 3) {
  console.error('Usage: npm run token -- <user>');
  process.exit(2);
}
try {
  const settings = mergeSettings(readLocalSettings(root).values, process.env);
  mintDevToken(user, devIssuerSettings(settings)).then(
    (token) => process.stdout.write(`${token}\n`),
    (error) => {
      console.error(`npm run token: ${error.message}`);
      process.exit(1);
    },
  );
} catch (error) {
  console.error(`npm run token: ${error.message}`);
  process.exit(1);
}
