// The opt-in debug hook: nothing of the app is reachable from the page's globals unless it is
// opened with `?debug` or with `globalThis.__edgeMeetHooks = true` set before its scripts run (the
// browser tests set it with an init script, tests/e2e/helpers.mjs). Separate from
// `__edgeMeetDebug`, which only turns on verbose logging (and PeerJS's own, whose warnings the
// tests would count as console errors).

export function hooksEnabled() {
  if (globalThis.__edgeMeetHooks === true) return true;
  try {
    return new URLSearchParams(globalThis.location?.search ?? "").has("debug");
  } catch {
    return false;
  }
}

/** Sets each `name: value` as a global when the hook is enabled; returns whether it did. */
export function expose(values) {
  if (!hooksEnabled()) return false;
  Object.assign(globalThis, values);
  return true;
}
