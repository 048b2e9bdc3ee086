/** A domain event: a plain readonly fact, PascalCase past tense. Never carries a secret value. */
export interface DomainEvent<TType extends string = string, TData = unknown> {
  readonly type: TType;
  readonly data: TData;
}

export interface EventMeta {
  /** ISO-8601 instant the command was handled. */
  readonly at: string;
  /** Who caused it: a user id, or `system:<job>` for the platform itself. */
  readonly actor: string;
  readonly correlationId: string;
}

export type EventEnvelope<E extends DomainEvent = DomainEvent> = E & { readonly meta: EventMeta };

/** An event as the workspace log recorded it. */
export type RecordedEvent<E extends DomainEvent = DomainEvent> = EventEnvelope<E> & {
  readonly id: string;
  readonly workspaceId: string;
  readonly streamId: string;
  /** 1-based position inside its stream. */
  readonly streamVersion: number;
  /** 1-based position inside the workspace's single ordered log. */
  readonly sequence: number;
  readonly prevHash: string;
  readonly hash: string;
};
