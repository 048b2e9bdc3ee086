import { removingCleanup, writePrivateFile } from './credentialFiles';
import type { ChannelPreparer } from './preparer';
import { envNameFor } from './preparer';

/** `temp-file`: the value in a 0600 file in the process's credential directory; the env var `as` holds its path. */
export const prepareTempFile: ChannelPreparer = async (request, target) => {
  const name = envNameFor(request);
  const file = await writePrivateFile(target, 'secret', request.value);
  const paths = [file];
  return { env: { [name]: file }, argsAfterCommand: [], paths, cleanup: removingCleanup(paths) };
};
