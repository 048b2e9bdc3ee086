#!/usr/bin/env node
'use strict';
// `npm run demo` (with `npm start` running in another shell): the guided tour in localhost/demo.ts.
const path = require('node:path');
const { ensureBuilt, root } = require('./ensureBuilt');

const demoModule = path.join(root, 'dist', 'localhost', 'demo.js');
ensureBuilt(demoModule);
const { runDemo } = require(demoModule);
const { devIssuerSettings, mintDevToken } = require(path.join(root, 'dist', 'infra', 'identity', 'devIssuer.js'));
const { readLocalSettings, mergeSettings } = require(path.join(root, 'dist', 'localhost', 'settings.js'));

(async () => {
  const settings = mergeSettings(readLocalSettings(root).values, process.env);
  const port = settings.LOCAL_HOST_PORT || '7071';
  const baseUrl = process.env.DEMO_BASE_URL || `http://127.0.0.1:${port}`;
  const token = await mintDevToken('demo-user', devIssuerSettings(settings));
  const outcome = await runDemo({ baseUrl, token, log: (line) => console.log(line) });
  const ok = outcome.runStatus === 'Completed' && outcome.pushedCommit && outcome.refusal.status === 422 && outcome.useRefusal.status === 422 && outcome.audit.ok;
  console.log(ok ? '\nDemo complete.' : '\nDemo finished, but something above did not go as expected.');
  process.exitCode = ok ? 0 : 1;
})().catch((error) => {
  console.error(`npm run demo: ${error.message}`);
  process.exitCode = 1;
});
