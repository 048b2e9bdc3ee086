import type { ChannelPreparer } from './preparer';

/** `stdin`: the value, byte for byte (no newline added), written to the process's stdin, which is then closed. */
export const prepareStdin: ChannelPreparer = async (request) => ({
  env: {},
  argsAfterCommand: [],
  stdin: request.value,
  paths: [],
  cleanup: async () => {},
});
