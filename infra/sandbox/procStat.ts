/**
 * The fields of a /proc/<pid>/stat line after the process's name, from its state on: state, ppid, pgrp, ….
 * The name (comm) may hold spaces and parentheses, so the fields start after the last ')'.
 */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}
