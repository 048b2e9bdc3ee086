#!/usr/bin/env node
'use strict';
// `npm run -s ssh-proxy -- --platform <https url> [--ca <pem>] <ticket>`: an OpenSSH ProxyCommand into a live run's
// sandbox (docs/sandbox-hosts.md). Its stdout is the SSH stream: ensureBuilt's messages go to stderr.
const path = require('node:path');
const { ensureBuilt, root } = require('./ensureBuilt');

const mainModule = path.join(root, 'dist', 'infra', 'sandbox', 'remote', 'sshProxyMain.js');
ensureBuilt(mainModule);
require(mainModule).main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`ssh-proxy: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
