#!/usr/bin/env node
'use strict';
// `npm run sandbox-image`: builds the Docker sandbox image from this machine's own files and imports it into
// the engine at DOCKER_HOST (no registry needed). Prints the image name; SANDBOX_IMAGE may name another one.
const path = require('node:path');
const { ensureBuilt, root } = require('./ensureBuilt');

const imageModule = path.join(root, 'dist', 'infra', 'sandbox', 'docker', 'sandboxImage.js');
ensureBuilt(imageModule);
const { buildSandboxImage } = require(imageModule);
const { dockerEngine, engineAnswers } = require(path.join(root, 'dist', 'infra', 'sandbox', 'docker', 'dockerEngine.js'));

(async () => {
  const docker = dockerEngine();
  if (!(await engineAnswers(docker))) throw new Error(`no Docker engine answers at ${process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock'}`);
  const started = Date.now();
  const built = await buildSandboxImage(docker, (line) => console.error(line));
  console.error(`(${Date.now() - started} ms)`);
  console.log(built.image);
})().catch((error) => {
  console.error(`npm run sandbox-image: ${error.message}`);
  process.exit(1);
});
