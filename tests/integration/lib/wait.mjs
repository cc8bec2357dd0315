// Bounded waiting: for a condition that can only be polled (an HTTP status,
// a Redis listing), and for a promise with a deadline.
import { setTimeout as delay } from 'node:timers/promises';

/**
 * Polls fn() until it returns a truthy value (returned) or the timeout passes
 * (throws with `what` and the last value or error seen). An error thrown by
 * fn with a truthy `fatal` property ends the wait at once.
 */
export async function waitFor(fn, { timeout = 5000, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      lastErr = undefined;
      if (last) return last;
    } catch (e) {
      if (e && e.fatal) throw e;
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const detail = lastErr ? `last error: ${lastErr.message}` : `last value: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (${detail})`);
    }
    await delay(interval);
  }
}

/** Resolves like p, or rejects after ms with a message naming what was awaited. */
export function withTimeout(p, ms, what = 'operation') {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
