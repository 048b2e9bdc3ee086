import type Dockerode from 'dockerode';
import { DomainError } from '../../../domain/errors';
import { SANDBOX_GID } from './imageFiles';

const ROUNDS = 5;
const EXEC_POLLS = 600;
const POLL_MS = 100;

/**
 * Stops every process of the given credential uids in a container, when the instance that supervised them is
 * gone. Nobody in the container holds CAP_KILL, so only the uid itself may signal its processes: an exec as each
 * uid sends SIGKILL to everything it may (kill(-1): all of that uid's processes but the sender). The command
 * carries no value, only a uid. `running` is re-read after each round, since a process may fork while it dies.
 */
export async function stopCredentialProcesses(docker: Dockerode, containerId: string, running: () => Promise<ReadonlySet<number>>): Promise<void> {
  let uids = await running();
  for (let round = 0; uids.size > 0; round++) {
    if (round === ROUNDS)
      throw new DomainError('SANDBOX.UNSUPERVISED_PROCESSES', `processes of credential uids ${[...uids].join(', ')} survived ${ROUNDS} rounds of SIGKILL`, 'unavailable');
    await Promise.all([...uids].map((uid) => killEveryProcessOf(docker, containerId, uid)));
    uids = await running();
  }
}

async function killEveryProcessOf(docker: Dockerode, containerId: string, uid: number): Promise<void> {
  const exec = await docker.getContainer(containerId).exec({
    Cmd: ['node', '-e', 'process.kill(-1, "SIGKILL")'],
    User: `${uid}:${SANDBOX_GID}`,
    WorkingDir: '/',
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
  });
  await exec.start({ Detach: true });
  for (let i = 0; i < EXEC_POLLS; i++) {
    const state = await exec.inspect();
    if (!state.Running && state.ExitCode !== null) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new DomainError('SANDBOX.UNSUPERVISED_PROCESSES', `stopping the processes of credential uid ${uid} did not finish`, 'unavailable');
}
