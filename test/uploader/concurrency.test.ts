import { describe, expect, it } from 'vitest';
import { AdaptiveConcurrency } from '../../src/uploader/concurrency.js';

/**
 * A simulated server on a simulated clock: each started request finishes after
 * `duration(active)` ms, where `active` is how many are in flight when it starts. The driver
 * advances the clock to the next finish, resolves it, and lets the limiter start the next ones.
 */
async function simulate(limiter: AdaptiveConcurrency, clock: { t: number }, files: number, duration: (active: number) => number, sizeBytes = 32 * 1024, throttleAt?: number) {
  const pending: Array<{ at: number; done: () => void }> = [];
  let active = 0;
  let maxActive = 0;
  let started = 0;
  const all = Promise.all(
    Array.from({ length: files }, () =>
      limiter.run(sizeBytes, () => {
        active++;
        started++;
        maxActive = Math.max(maxActive, active);
        if (throttleAt !== undefined && started === throttleAt) limiter.throttled();
        return new Promise<void>((resolve) => pending.push({ at: clock.t + duration(active), done: resolve }));
      }),
    ),
  );
  const tick = () => new Promise((r) => setImmediate(r));
  await tick();
  while (pending.length > 0) {
    pending.sort((a, b) => a.at - b.at);
    const next = pending.shift()!;
    clock.t = next.at;
    active--;
    next.done();
    await tick();
  }
  await all;
  return { maxActive };
}

describe('AdaptiveConcurrency', () => {
  it('grows to its maximum when every request waits on a round trip (a remote link)', async () => {
    const clock = { t: 0 };
    const limiter = new AdaptiveConcurrency({ initial: 8, max: 64, now: () => clock.t });
    const { maxActive } = await simulate(limiter, clock, 2000, () => 40);
    expect(limiter.limit).toBe(64);
    expect(maxActive).toBe(64);
  });

  it('stays where it started when the server is the limit (more in flight only queues)', async () => {
    const clock = { t: 0 };
    const limiter = new AdaptiveConcurrency({ initial: 8, max: 64, now: () => clock.t });
    // Throughput is fixed: each request takes longer the more are in flight.
    const { maxActive } = await simulate(limiter, clock, 2000, (active) => 2 * active);
    expect(limiter.limit).toBe(8);
    expect(limiter.peak).toBe(12);
    expect(maxActive).toBeLessThanOrEqual(12);
  });

  it('halves on a throttling answer and grows no more', async () => {
    const clock = { t: 0 };
    const limiter = new AdaptiveConcurrency({ initial: 8, max: 64, now: () => clock.t });
    await simulate(limiter, clock, 500, () => 40, 32 * 1024, 3);
    expect(limiter.limit).toBe(4);
    expect(limiter.peak).toBe(8);
  });

  it('is a fixed limit when max equals initial', async () => {
    const clock = { t: 0 };
    const limiter = new AdaptiveConcurrency({ initial: 3, max: 3, now: () => clock.t });
    const { maxActive } = await simulate(limiter, clock, 100, () => 40);
    expect(limiter.limit).toBe(3);
    expect(maxActive).toBe(3);
  });

  it('keeps the bytes held in flight within the memory budget, whatever the limit', async () => {
    const clock = { t: 0 };
    const MiB = 1024 * 1024;
    const limiter = new AdaptiveConcurrency({ initial: 64, max: 64, memoryBudgetBytes: 16 * MiB, now: () => clock.t });
    const { maxActive } = await simulate(limiter, clock, 100, () => 40, 4 * MiB);
    // Each file holds at most one 1 MiB buffer: 16 in flight fill the 16 MiB budget.
    expect(maxActive).toBe(16);
  });

  it('does not grow past what the memory budget lets into flight, however the link behaves', async () => {
    const clock = { t: 0 };
    const MiB = 1024 * 1024;
    const limiter = new AdaptiveConcurrency({ initial: 8, max: 64, memoryBudgetBytes: 16 * MiB, now: () => clock.t });
    // Link-bound (40 ms each), but large files: only 16 fit the budget at once.
    const { maxActive } = await simulate(limiter, clock, 400, () => 40, 4 * MiB);
    expect(maxActive).toBe(16);
    // 8 -> 12 -> 18 paid off; 27 put no more in flight than 18 did, so it stepped back.
    expect([limiter.limit, limiter.peak]).toEqual([18, 27]);
  });

  it('lets one file through even when it alone exceeds the budget, and counts a failure as a completion', async () => {
    const limiter = new AdaptiveConcurrency({ initial: 2, max: 2, memoryBudgetBytes: 1, bufferBytes: 1024 });
    await expect(limiter.run(10_000, async () => 'ok')).resolves.toBe('ok');
    await expect(limiter.run(10, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(limiter.run(10, async () => 'again')).resolves.toBe('again');
  });
});
