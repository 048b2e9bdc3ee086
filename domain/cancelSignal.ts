import type { CancelSignal } from './ports/sandboxHost';

/** A cancellation the domain can raise without DOM or Node types: the host's CancelSignal, and its trigger. */
export interface CancelSource {
  readonly signal: CancelSignal;
  cancel(): void;
}

export function cancelSource(): CancelSource {
  const listeners = new Set<() => void>();
  let aborted = false;
  return {
    signal: {
      get aborted() {
        return aborted;
      },
      addEventListener: (_type, listener) => void listeners.add(listener),
      removeEventListener: (_type, listener) => void listeners.delete(listener),
    },
    cancel: () => {
      if (aborted) return;
      aborted = true;
      for (const listener of [...listeners]) listener();
    },
  };
}

/** A signal raised when any of `signals` is; `release` stops listening to them (call it when the work is done). */
export function anyCancel(signals: readonly CancelSignal[]): { readonly signal: CancelSignal; release(): void } {
  const combined = cancelSource();
  const cancel = (): void => combined.cancel();
  for (const signal of signals) {
    if (signal.aborted) combined.cancel();
    else signal.addEventListener('abort', cancel, { once: true });
  }
  return { signal: combined.signal, release: () => signals.forEach((s) => s.removeEventListener('abort', cancel)) };
}
