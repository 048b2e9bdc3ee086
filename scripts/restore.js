#!/usr/bin/env node
'use strict';
// `npm run restore -- --workspace <id> --from <backup|latest> [--table <name>]`: rebuilds a workspace's log
// from the backup archive (docs/backup.md). Locally it uses the embedded Azurite of a running `npm start`.
const path = require('node:path');
const { ensureBuilt, root } = require('./ensureBuilt');

const commandModule = path.join(root, 'dist', 'functions', 'restoreCommand.js');
ensureBuilt(commandModule);
const { readLocalSettings, mergeSettings, hostSettings, isDevelopmentStorage } = require(path.join(root, 'dist', 'localhost', 'settings.js'));
const { azuriteConnectionString } = require(path.join(root, 'dist', 'localhost', 'azuriteProcess.js'));
const { runRestore } = require(commandModule);

const file = readLocalSettings(root);
const merged = mergeSettings(file.values, process.env);
const ports = hostSettings(merged, file.localHttpPort).azuritePorts;
const env = {};
for (const [k, v] of Object.entries(merged)) env[k] = isDevelopmentStorage(v) ? azuriteConnectionString(ports) : v;
runRestore(process.argv.slice(2), env, (line) => console.log(line)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`npm run restore: ${error.message}`);
    process.exit(1);
  },
);
