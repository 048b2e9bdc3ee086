#!/usr/bin/env node
'use strict';
// `npm run enqueue-run -- <workspaceId> <user> <spec.json | -> [requestId]`: a signed run request on the local
// `runs` queue (the local producer key under .azurite/run-producer/), for a host started with `npm start`.
// Prints the request id; the run's outcome is in the workspace's log, or in `runs-poison` with its reason.
const fs = require('node:fs');
const path = require('node:path');
const { ensureBuilt, root } = require('./ensureBuilt');

const cliModule = path.join(root, 'dist', 'localhost', 'enqueueRun.js');
ensureBuilt(cliModule);
const { enqueueRunFromCli } = require(cliModule);
const { readLocalSettings, mergeSettings } = require(path.join(root, 'dist', 'localhost', 'settings.js'));

const settings = mergeSettings(readLocalSettings(root).values, process.env);
enqueueRunFromCli(process.argv.slice(2), settings, () => fs.readFileSync(0, 'utf8')).then(
  (requestId) => process.stdout.write(`${requestId}\n`),
  (error) => {
    console.error(`npm run enqueue-run: ${error.message}`);
    process.exit(error.message.startsWith('Usage:') ? 2 : 1);
  },
);
