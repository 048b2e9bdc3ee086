import type { ChannelPreparer } from './preparer';
import { envNameFor } from './preparer';

/** `process-env`: the value in one env var of that one process; nothing on disk, so nothing to clean. */
export const prepareProcessEnv: ChannelPreparer = async (request) => {
  const name = envNameFor(request);
  return { env: { [name]: request.value }, argsAfterCommand: [], paths: [], cleanup: async () => {} };
};
