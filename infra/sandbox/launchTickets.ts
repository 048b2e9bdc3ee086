import { randomBytes } from 'node:crypto';

/** The env var every sandbox process is launched with; its value is a ticket the launcher issued. */
export const TICKET_ENV = 'DP_LAUNCH_TICKET';

/**
 * Tickets prove a process came through the guarded launcher: the launcher issues one only after the guard
 * passed, and every spawn carries it. A ticket is provenance, not a secret: the process may read its own.
 */
export class TicketRegistry {
  private readonly active = new Set<string>();
  private readonly retired = new Set<string>();

  issue(): string {
    const ticket = randomBytes(16).toString('hex');
    this.active.add(ticket);
    return ticket;
  }

  isActive(ticket: string): boolean {
    return this.active.has(ticket);
  }

  wasIssued(ticket: string): boolean {
    return this.active.has(ticket) || this.retired.has(ticket);
  }

  retire(ticket: string): void {
    if (this.active.delete(ticket)) this.retired.add(ticket);
  }

  get issuedCount(): number {
    return this.active.size + this.retired.size;
  }

  get activeCount(): number {
    return this.active.size;
  }
}

/** The process-wide registry the default launcher uses. */
export const launchTickets = new TicketRegistry();
