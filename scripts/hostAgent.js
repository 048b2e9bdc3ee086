#!/usr/bin/env node
'use strict';
// `npm run host-agent -- --platform <https url> --token <enrolment token> [--ca <pem>]`: the sandbox host agent
// (docs/sandbox-hosts.md). It dials out to the platform over wss:// and serves the sandbox protocol.
const path = require('node:path');
const { ensureBuilt, root } = require('./ensureBuilt');

const mainModule = path.join(root, 'dist', 'infra', 'sandbox', 'remote', 'hostAgentMain.js');
ensureBuilt(mainModule);
require(mainModule).main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`host agent: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
