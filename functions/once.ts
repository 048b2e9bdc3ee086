/**
 * A value built on first use and kept for the life of the process. A build that fails (throws, or returns a
 * promise that rejects) is not kept: the next use builds again, so a setting fixed or a store that came up
 * later is picked up, and every caller in between sees the failure by name.
 */
export function once<T>(build: () => T): () => T {
  let built: { readonly value: T } | undefined;
  return () => {
    if (built) return built.value;
    const value = build();
    built = { value };
    if (value instanceof Promise)
      value.catch(() => {
        if (built?.value === value) built = undefined;
      });
    return value;
  };
}
