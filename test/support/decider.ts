import { expect } from 'vitest';
import type { DomainEvent } from '../../domain/events';
import { DomainError } from '../../domain/errors';

interface PureDecider<S, C, E extends DomainEvent> {
  initialState(): S;
  evolve(state: S, event: E): S;
  decide(command: C, state: S): readonly E[];
}

/** given([events]).when(command).then([events]) / .thenThrows(code) — decisions as specifications. */
export function specFor<S, C, E extends DomainEvent>(decider: PureDecider<S, C, E>) {
  return {
    given(events: readonly E[] = []) {
      const state = events.reduce((s, e) => decider.evolve(s, e), decider.initialState());
      return {
        when(command: C) {
          const run = (): readonly E[] => decider.decide(command, state);
          return {
            then(expected: readonly E[]): void {
              expect(run()).toEqual(expected);
            },
            thenThrows(code: string): void {
              let caught: unknown;
              try {
                run();
              } catch (error) {
                caught = error;
              }
              expect(caught, `expected ${code}`).toBeInstanceOf(DomainError);
              expect((caught as DomainError).code).toBe(code);
            },
          };
        },
        thenState(check: (state: S) => void): void {
          check(state);
        },
      };
    },
  };
}
